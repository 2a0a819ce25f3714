import { readFile } from "node:fs/promises";
import { defineConfig, type Options } from "tsup";
import { tsupConfig } from "../../../tsup.base.ts";

// esbuild's plugin type, as tsup takes it (esbuild itself is tsup's dependency, not ours).
type Plugin = NonNullable<Options["esbuildPlugins"]>[number];

/** Replaces `from` in a bundled file's source, failing the build if a new release of the package changed that line. */
function patchSource(filter: RegExp, from: string, to: string): Plugin {
  return {
    name: `patch ${filter.source}`,
    setup(build) {
      build.onLoad({ filter }, async ({ path }) => {
        const source = await readFile(path, "utf8");
        if (!source.includes(from)) throw new Error(`${path} no longer contains ${JSON.stringify(from)}: update tsup.config.ts`);
        return { contents: source.replace(from, to), loader: "js" };
      });
    },
  };
}

// dockerode's BuildKit sessions (gRPC + protobufjs) and docker-modem's SSH transport (ssh2) are ~170 files that every process
// loaded with dockerode, and Kiln never builds with BuildKit. dockerode is bundled with both made lazy: they load, from the installed
// dockerode, on first use (an ssh:// DOCKER_HOST still works). The other bundled packages save Node resolving ~40 files at start-up.
const lazyTransports: Plugin[] = [
  patchSource(
    /[\\/]dockerode[\\/]lib[\\/]docker\.js$/,
    "withSession = require('./session'),",
    "withSession = function () { return require('dockerode/lib/session.js').apply(this, arguments); },",
  ),
  patchSource(
    /[\\/]docker-modem[\\/]lib[\\/]modem\.js$/,
    "ssh = require('./ssh'),",
    // docker-modem is dockerode's dependency, not ours: resolve it from dockerode (pnpm does not hoist it).
    "ssh = function () { var from = { paths: [require.resolve('dockerode')] }; " +
      "return require(require.resolve('docker-modem/lib/ssh.js', from)).apply(this, arguments); },",
  ),
  {
    name: "external dockerode transports",
    setup(build) {
      build.onResolve({ filter: /^(dockerode\/lib\/session\.js|\.\/buildkit)$/ }, ({ path }) => ({
        path: path === "./buildkit" ? "dockerode/lib/buildkit.js" : path,
        external: true,
      }));
    },
  },
];

export default defineConfig(
  tsupConfig({
    entry: ["src/index.ts", "src/testing.ts"],
    // Chunks, so the engine client (dockerode, imported lazily) loads only when a command talks to Docker.
    splitting: true,
    noExternal: ["dockerode", "docker-modem", "tar-fs", "tar-stream"],
    esbuildPlugins: lazyTransports,
  }),
);

// Packer to compare with: --packer PATH, else `packer` on PATH, else Debian's package (1.6.6, whose docker and amazon-ebs builders
// are built in), downloaded once with `apt-get download` and unpacked under ~/.cache/kiln/bench — nothing is installed.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

const CACHE = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "kiln", "bench", "packer");
const CACHED = join(CACHE, "usr", "bin", "packer");

/** `{ path, version }`, or undefined (with why on stderr) when there is no Packer and none can be downloaded. */
export function findPacker(flag) {
  const candidates = flag ? [flag] : ["packer", CACHED];
  for (const path of candidates) {
    const version = versionOf(path);
    if (version) return { path, version };
  }
  if (flag) throw new Error(`--packer ${flag} does not run`);
  try {
    rmSync(CACHE, { recursive: true, force: true });
    mkdirSync(CACHE, { recursive: true });
    process.stderr.write(`Packer: not on PATH; downloading Debian's package into ${CACHE} (apt-get download, not installed)\n`);
    execFileSync("apt-get", ["download", "packer"], { cwd: CACHE, stdio: "ignore", timeout: 300_000 });
    const deb = readdirSync(CACHE).find((name) => name.endsWith(".deb"));
    if (!deb) throw new Error("apt-get download left no .deb");
    execFileSync("dpkg-deb", ["-x", deb, "."], { cwd: CACHE, stdio: "ignore", timeout: 120_000 });
  } catch (error) {
    process.stderr.write(`Packer: none found and the download failed (${error.message}): the Packer column is skipped.\n`);
    return undefined;
  }
  const version = versionOf(CACHED);
  return version ? { path: CACHED, version } : undefined;
}

function versionOf(path) {
  if (path.includes("/") && !existsSync(path)) return undefined;
  try {
    const out = execFileSync(path, ["version"], { env: { ...process.env, CHECKPOINT_DISABLE: "1" }, timeout: 30_000, encoding: "utf8" });
    return out.trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

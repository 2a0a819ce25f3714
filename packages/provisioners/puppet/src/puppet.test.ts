import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KilnError } from "@kiln/core";
import { createTestContext, testPluginInit } from "@kiln/test-suite";
import { hieraDataPlace, puppet, type PuppetOptions } from "./puppet.js";

const provisioner = puppet(testPluginInit("provisioner", "puppet"));
const validate = async (input: unknown) => provisioner.schema["~standard"].validate(input);
const messages = async (input: unknown) => ((await validate(input)).issues ?? []).map((issue) => issue.message).join("; ");

describe("puppet options", () => {
  it("accepts a manifest alone, and every option", async () => {
    for (const input of [
      { manifest_file: "site.pp" },
      {
        manifest_file: "manifests/",
        module_paths: ["modules", "vendor/modules"],
        hiera_config_path: "hiera.yaml",
        hiera_data_path: "data",
        facter: { role: "web", api_token: "x", app_version2: "" },
        extra_arguments: ["--environment", "production"],
        puppet_bin_dir: "/opt/puppetlabs/bin",
        install: true,
        staging_directory: "/var/tmp/puppet",
        working_directory: "/srv",
        clean_staging_directory: false,
      },
      { manifest_file: "site.pp", hiera_config_path: "puppet/hiera.yaml", hiera_data_path: "puppet/data/prod" },
    ]) {
      expect((await validate(input)).issues, JSON.stringify(input)).toBeUndefined();
    }
  });

  it("rejects what Puppet or the machine would not take, saying why", async () => {
    expect((await validate({})).issues).toBeDefined();
    expect((await validate({ manifest_file: "site.pp", module_paths: [] })).issues).toBeDefined();
    expect((await validate({ manifest_file: "site.pp", manifest_dir: "m" })).issues).toBeDefined();
    expect(await messages({ manifest_file: "a.pp", facter: { Role: "x" } })).toMatch(/"Role" is not a fact name Facter keeps as written/);
    expect(await messages({ manifest_file: "a.pp", facter: { "my-fact": "x" } })).toMatch(/"my-fact" is not a fact name/);
    expect(await messages({ manifest_file: "a.pp", staging_directory: "tmp/x" })).toMatch(/staging_directory must be an absolute path/);
    expect(await messages({ manifest_file: "a.pp", staging_directory: "//" })).toMatch(/cannot be \//);
    expect(await messages({ manifest_file: "a.pp", working_directory: "/srv/../etc" })).toMatch(/must not contain "\.\."/);
    expect(await messages({ manifest_file: "a.pp", puppet_bin_dir: "bin" })).toMatch(/puppet_bin_dir must be an absolute path/);
    expect(await messages({ manifest_file: "a.pp", hiera_data_path: "data" })).toMatch(/hiera_data_path needs hiera_config_path/);
    expect(await messages({ manifest_file: "a.pp", hiera_config_path: "puppet/hiera.yaml", hiera_data_path: "hieradata" })).toMatch(
      /must be a directory inside puppet, the hiera config's directory/,
    );
  });
});

describe("hieraDataPlace", () => {
  it("is the data directory relative to the hiera config's directory, or undefined outside it", () => {
    expect(hieraDataPlace("hiera.yaml", "data")).toBe("data");
    expect(hieraDataPlace("./puppet/hiera.yaml", "puppet/data/")).toBe("data");
    expect(hieraDataPlace("puppet/hiera.yaml", "puppet/env/prod")).toBe("env/prod");
    expect(hieraDataPlace("/srv/p/hiera.yaml", "/srv/p/data")).toBe("data");
    expect(hieraDataPlace("puppet/hiera.yaml", "puppet")).toBeUndefined();
    expect(hieraDataPlace("puppet/hiera.yaml", "data")).toBeUndefined();
    expect(hieraDataPlace("puppet/hiera.yaml", "puppet/../data")).toBeUndefined();
    expect(hieraDataPlace("puppet/hiera.yaml", "/srv/data")).toBeUndefined();
  });
});

describe("puppet fingerprint", () => {
  let dir: string;
  const files: Record<string, string> = {
    "site.pp": "include app\n",
    "modules/app/manifests/init.pp": "class app { }\n",
    "puppet/hiera.yaml": "version: 5\n",
    "puppet/data/common.yaml": "app::x: 1\n",
  };
  const options: PuppetOptions = {
    manifest_file: "site.pp",
    module_paths: ["modules"],
    hiera_config_path: "puppet/hiera.yaml",
    hiera_data_path: "puppet/data",
  };
  const write = async (root: string, path: string, content: string) => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  };
  const fingerprint = async (opts: PuppetOptions = options, cwd = dir) => {
    await using test = createTestContext({ cwd });
    return provisioner.fingerprint(test.ctx, opts);
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-puppet-unit-"));
    for (const [path, content] of Object.entries(files)) await write(dir, path, content);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("is stable, and changes with every staged file: manifest, module, hiera config and data", async () => {
    const before = await fingerprint();
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    expect(await fingerprint()).toBe(before);
    for (const path of Object.keys(files)) {
      await write(dir, path, `${files[path]}# changed\n`);
      expect(await fingerprint(), path).not.toBe(before);
      await write(dir, path, files[path] ?? "");
    }
    await write(dir, "modules/app/templates/new.erb", "new file\n");
    expect(await fingerprint()).not.toBe(before);
  });

  it("leaves out .git and editor files, and does not depend on where the project is", async () => {
    const before = await fingerprint();
    await write(dir, "modules/.git/HEAD", "ref: refs/heads/main\n");
    await write(dir, "modules/app/manifests/init.pp.swp", "swap");
    expect(await fingerprint()).toBe(before);
    const other = await mkdtemp(join(tmpdir(), "kiln-puppet-unit-other-"));
    try {
      for (const [path, content] of Object.entries(files)) await write(other, path, content);
      expect(await fingerprint(options, other)).toBe(before);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("changes with the options (facts, arguments)", async () => {
    const base = await fingerprint();
    expect(await fingerprint({ ...options, facter: { role: "web" } })).not.toBe(base);
    expect(await fingerprint({ ...options, extra_arguments: ["--noop"] })).not.toBe(base);
  });

  it("reports a missing or wrong-kind path as E_CONFIG naming the option", async () => {
    const missing = await fingerprint({ ...options, module_paths: ["modules", "vendor"] }).catch((thrown: unknown) => thrown);
    expect(missing).toBeInstanceOf(KilnError);
    expect(missing).toMatchObject({ code: "E_CONFIG", exitCode: 2 });
    expect((missing as KilnError).message).toContain(`module_paths.1 vendor not found (looked at ${join(dir, "vendor")})`);
    expect((missing as KilnError).hint).toMatch(/relative to the bake file's directory/);
    const wrongKind = await fingerprint({ ...options, module_paths: ["site.pp"] }).catch((thrown: unknown) => thrown);
    expect((wrongKind as KilnError).message).toBe("puppet: module_paths.0 site.pp is not a directory");
  });

  it("declares every local path it reads, for kiln validate's confinement", () => {
    expect(provisioner.hostPaths?.({ ...options, module_paths: ["modules", "vendor"] })).toEqual([
      { path: ["manifest_file"], value: "site.pp", access: "read" },
      { path: ["module_paths", 0], value: "modules", access: "read" },
      { path: ["module_paths", 1], value: "vendor", access: "read" },
      { path: ["hiera_config_path"], value: "puppet/hiera.yaml", access: "read" },
      { path: ["hiera_data_path"], value: "puppet/data", access: "read" },
    ]);
  });
});

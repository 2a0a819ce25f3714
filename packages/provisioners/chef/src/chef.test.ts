import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KilnError } from "@kiln/core";
import { createTestContext, testPluginInit } from "@kiln/test-suite";
import { chef, chefArguments, secretLines, type ChefOptions } from "./chef.js";

const provisioner = chef(testPluginInit("provisioner", "chef"));
const validate = async (input: unknown) => provisioner.schema["~standard"].validate(input);
const messages = async (input: unknown) => ((await validate(input)).issues ?? []).map((issue) => issue.message).join("; ");
const base = { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"] };

describe("chef options", () => {
  it("accepts Packer's chef-solo option names and every run_list form", async () => {
    for (const input of [
      base,
      {
        cookbook_paths: ["a", "b"],
        run_list: ["recipe[app]", "recipe[app::db]", "recipe[app::db@1.2.3]", "role[web-1]", "recipe[my.cb_2]"],
      },
      {
        ...base,
        roles_path: "roles",
        environments_path: "environments",
        data_bags_path: "data_bags",
        json: { app: { port: 80, tags: ["a"], on: true } },
        chef_environment: "production",
        encrypted_data_bag_secret_path: "secret",
        install_command: "curl -L https://omnitruck.cinc.sh/install.sh | bash",
        staging_directory: "/var/tmp/chef",
        clean_staging_directory: false,
        chef_license: "accept",
        extra_arguments: ["-l", "debug"],
      },
      { ...base, skip_install: true },
      { ...base, chef_environment: "_default" },
    ]) {
      expect((await validate(input)).issues, JSON.stringify(input)).toBeUndefined();
    }
  });

  it("explains what is wrong", async () => {
    expect(await messages({ ...base, run_list: ["apache2"] })).toBe(
      '"apache2" is not a run_list entry: write recipe[cookbook], recipe[cookbook::recipe] or role[name]',
    );
    expect(await messages({ ...base, run_list: [] })).toMatch(/at least one recipe/);
    expect(await messages({ ...base, chef_environment: "production" })).toBe("chef_environment needs environments_path");
    expect(await messages({ ...base, json: { run_list: [] } })).toMatch(/set run_list and chef_environment with their own options/);
    expect(await messages({ ...base, install_command: "true", skip_install: true })).toMatch(/never runs install_command/);
    expect(await messages({ ...base, staging_directory: "tmp/x" })).toMatch(/absolute path/);
    expect(await messages({ ...base, staging_directory: "/tmp/../x" })).toMatch(/must not contain \.\./);
  });

  it("declares every host path it reads, and extra_arguments as shown on a command line", () => {
    const opts: ChefOptions = {
      ...base,
      cookbook_paths: ["cookbooks", "vendor/cookbooks"],
      roles_path: "roles",
      environments_path: "envs",
      data_bags_path: "bags",
      encrypted_data_bag_secret_path: "../secret",
    };
    expect(provisioner.hostPaths?.(opts)).toEqual([
      { path: ["cookbook_paths", 0], value: "cookbooks", access: "read" },
      { path: ["cookbook_paths", 1], value: "vendor/cookbooks", access: "read" },
      { path: ["roles_path"], value: "roles", access: "read" },
      { path: ["environments_path"], value: "envs", access: "read" },
      { path: ["data_bags_path"], value: "bags", access: "read" },
      { path: ["encrypted_data_bag_secret_path"], value: "../secret", access: "read" },
    ]);
    expect(provisioner.exposedOptions?.map((option) => option.path)).toEqual([["extra_arguments"]]);
  });
});

describe("chefArguments and secretLines", () => {
  it("runs chef-solo without colour on the staged solo.rb and node JSON, then extra_arguments", () => {
    expect(chefArguments("/tmp/kiln-chef-x", ["-l", "debug"])).toEqual([
      "--no-color",
      "-c",
      "/tmp/kiln-chef-x/solo.rb",
      "-j",
      "/tmp/kiln-chef-x/node.json",
      "-l",
      "debug",
    ]);
  });

  it("hides a wrapped secret whole and line by line, longest first, but not lines too short to mean anything", () => {
    const secret = Buffer.from("  QUJDREVGR0hJSktMTU5PUA==\nUVJTVFVWV1hZWg==\nab\n");
    expect(secretLines(secret)).toEqual(["QUJDREVGR0hJSktMTU5PUA==\nUVJTVFVWV1hZWg==\nab", "QUJDREVGR0hJSktMTU5PUA==", "UVJTVFVWV1hZWg=="]);
  });
});

describe("chef fingerprint", () => {
  let dir: string;
  const write = async (path: string, content: string) => {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-chef-unit-"));
    await write("cookbooks/app/recipes/default.rb", 'package "nginx"\n');
    await write("roles/web.json", "{}\n");
    await write("data_bags/creds/db.json", '{"id":"db"}\n');
    await write("secret", "first-secret-value\n");
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const opts: ChefOptions = { ...base, roles_path: "roles", data_bags_path: "data_bags", encrypted_data_bag_secret_path: "secret" };
  const fingerprint = async (options: ChefOptions = opts, cwd = dir) => {
    await using test = createTestContext({ cwd });
    return provisioner.fingerprint(test.ctx, options);
  };

  it("is stable, and changes with a recipe, a role, a data bag item and the options", async () => {
    const before = await fingerprint();
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    expect(await fingerprint()).toBe(before);
    for (const [path, content] of [
      ["cookbooks/app/recipes/default.rb", 'package "apache2"\n'],
      ["roles/web.json", '{"run_list":[]}\n'],
      ["data_bags/creds/db.json", '{"id":"db","x":1}\n'],
    ] as const) {
      await write(path, content);
      const after = await fingerprint();
      expect(after, path).not.toBe(before);
    }
    expect(await fingerprint({ ...opts, json: { a: 1 } })).not.toBe(await fingerprint({ ...opts, json: { a: 2 } }));
    expect(await fingerprint({ ...opts, run_list: ["recipe[app::a]"] })).not.toBe(
      await fingerprint({ ...opts, run_list: ["recipe[app::b]"] }),
    );
  });

  it("leaves the secret's content (and where it is) out: rotating it does not rebake", async () => {
    const before = await fingerprint();
    await write("secret", "rotated-secret-value\n");
    await write("elsewhere/secret", "another-secret-value\n");
    expect(await fingerprint()).toBe(before);
    expect(await fingerprint({ ...opts, encrypted_data_bag_secret_path: "elsewhere/secret" })).toBe(before);
    const { encrypted_data_bag_secret_path: _secret, ...withoutSecret } = opts;
    expect(await fingerprint(withoutSecret)).not.toBe(before);
  });

  it("ignores .git and editor droppings, and does not depend on where the project is", async () => {
    const before = await fingerprint();
    await write("cookbooks/app/.git/HEAD", "ref: refs/heads/main\n");
    await write("cookbooks/app/recipes/default.rb~", "backup\n");
    expect(await fingerprint()).toBe(before);
    const other = await mkdtemp(join(tmpdir(), "kiln-chef-unit-other-"));
    try {
      for (const [path, content] of [
        ["cookbooks/app/recipes/default.rb", 'package "nginx"\n'],
        ["roles/web.json", "{}\n"],
        ["data_bags/creds/db.json", '{"id":"db"}\n'],
        ["secret", "x-secret-value\n"],
      ]) {
        await mkdir(dirname(join(other, path as string)), { recursive: true });
        await writeFile(join(other, path as string), content as string);
      }
      expect(await fingerprint(opts, other)).toBe(before);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("reports a missing cookbook directory or secret as E_CONFIG naming the option, before anything runs", async () => {
    const missing = (await fingerprint({ ...opts, cookbook_paths: ["cookbooks", "vendor"] }).catch((e: unknown) => e)) as KilnError;
    expect(missing).toBeInstanceOf(KilnError);
    expect(missing).toMatchObject({ code: "E_CONFIG", exitCode: 2 });
    expect(missing.message).toBe(`chef: cookbook_paths[1] vendor not found (looked at ${join(dir, "vendor")})`);
    expect(missing.hint).toMatch(/relative to the bake file's directory/);
    const notDir = (await fingerprint({ ...opts, roles_path: "secret" }).catch((e: unknown) => e)) as KilnError;
    expect(notDir.message).toBe("chef: roles_path secret is not a directory");
    const noSecret = (await fingerprint({ ...opts, encrypted_data_bag_secret_path: "nope" }).catch((e: unknown) => e)) as KilnError;
    expect(noSecret).toMatchObject({ code: "E_CONFIG" });
    expect(noSecret.message).toMatch(/^chef: encrypted_data_bag_secret_path nope not found/);
    await write("empty", "\n");
    const empty = (await fingerprint({ ...opts, encrypted_data_bag_secret_path: "empty" }).catch((e: unknown) => e)) as KilnError;
    expect(empty.message).toBe("chef: encrypted_data_bag_secret_path empty is empty");
  });

  it("refuses a path outside the project (through ctx.hostPath)", async () => {
    const error = (await fingerprint({ ...opts, cookbook_paths: ["../../etc"] }).catch((e: unknown) => e)) as KilnError;
    expect(error).toMatchObject({ code: "E_CONFIG" });
    expect(error.message).toMatch(/outside|not allowed/);
  });
});

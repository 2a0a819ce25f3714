import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CLI, kiln, project } from "./helpers.js";

const version = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")).version as string;
/** Records which CommonJS modules a process loaded (dockerode is CommonJS), printed on exit. */
const PROBE = fileURLToPath(new URL("./fixtures/loaded-modules.cjs", import.meta.url));
const ESM_PROBE = new URL("./fixtures/esm-probe.mjs", import.meta.url).href;

describe("kiln commands", { timeout: 60_000 }, () => {
  it("a reader that stops early (kiln schema | head -1) ends the output quietly", async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn("/bin/sh", ["-c", `"${process.execPath}" "${CLI}" schema | head -c 10 >/dev/null`], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("close", (code) => resolve({ code, stderr }));
    });
    expect(result).toEqual({ code: 0, stderr: "" });
  });

  it("kiln init -C of a missing directory says so, exit 2", async () => {
    const result = await kiln(["init", "-C", "/nonexistent/kiln-project"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/no directory \/nonexistent\/kiln-project/);
  });

  it.each(["constructor", "__proto__", "toString"])("kiln %s is an unknown command, not a crash", async (name) => {
    const result = await kiln([name]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(`unknown command "${name}"`);
  });

  it("validate notes a plugin of the project (it runs code) without loading it", async () => {
    const plugin = `import { writeFileSync } from "node:fs";\nwriteFileSync(new URL("./RAN", import.meta.url), "ran");\nexport default () => ({});\n`;
    await using dir = await project({
      "kiln.yaml": "plugins:\n  drivers: { box: ./plugins/box.mjs }\nimages:\n  a: { driver: box, source: s }\n",
      "plugins/box.mjs": plugin,
    });
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /note: \S*kiln\.yaml:4:\d+: images\.a\.driver: runs code of the project: .*plugins\/box\.mjs \(not loaded now/,
    );
    expect(existsSync(join(dir.dir, "plugins/RAN"))).toBe(false);
  });

  it("--version prints the version without loading the Docker SDK", async () => {
    const result = await kiln(["--version"], { nodeArgs: ["--require", PROBE] });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toBe(`kiln ${version}\n`);
    expect(result.stderr).not.toMatch(/dockerode/);
    expect(result.stderr).toMatch(/loaded-modules/);
  });

  it("validate loads the driver's schema but not its SDK", async () => {
    await using dir = await project({ "kiln.yaml": "images:\n  a: { driver: docker, source: debian:bookworm }\n" });
    const result = await kiln(["validate", "-C", dir.dir], { nodeArgs: ["--require", PROBE] });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("is valid: 1 image (a)");
    expect(result.stderr).not.toMatch(/dockerode/);
  });

  it("validate of an EC2 image loads the driver's schema but not the AWS SDK", async () => {
    const yaml = "images:\n  a: { driver: ec2, region: us-east-1, source: ami-0abc, instance_type: t3.micro, ssh_username: admin }\n";
    await using dir = await project({ "kiln.yaml": yaml });
    const probe = join(dir.dir, "resolved.txt");
    const result = await kiln(["validate", "-C", dir.dir], { nodeArgs: ["--import", ESM_PROBE], env: { KILN_ESM_PROBE_FILE: probe } });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const resolved = await readFile(probe, "utf8");
    expect(resolved).toMatch(/drivers\/ec2\/dist|driver-ec2/);
    expect(resolved).not.toMatch(/@aws-sdk|node-ssh|ssh2/);
  });

  it("init writes a starter bake file that validates, and refuses to overwrite it", async () => {
    await using dir = await project({});
    expect((await kiln(["init", "-C", dir.dir])).code).toBe(0);
    expect(await readFile(join(dir.dir, "kiln.yaml"), "utf8")).toContain("driver: docker");
    const validated = await kiln(["validate", "-C", dir.dir]);
    expect(validated.stdout).toContain("is valid: 2 images (base, app)");
    const again = await kiln(["init", "-C", dir.dir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("--force");
  });

  it("inspect shows images in bake order with sources, provisioners and tags", async () => {
    await using dir = await project({});
    await kiln(["init", "-C", dir.dir]);
    const result = await kiln(["inspect", dir.dir, "--json"]);
    const description = JSON.parse(result.stdout);
    expect(description.images.map((image: { name: string }) => image.name)).toEqual(["base", "app"]);
    expect(description.images[1]).toMatchObject({ from: "base", provision: ["shell"], tags: ["my/app:0.1.0"], checks: 1 });
    expect(description.variables).toEqual({ version: "0.1.0" });
  });

  it("variables come from --var-file and KILN_VAR_ with --var winning", async () => {
    await using dir = await project({
      "kiln.yaml":
        "variables:\n  a: { default: from-default }\n  b: { default: from-default }\n  c: { default: from-default }\nimages:\n  x: { driver: docker, source: debian }\n",
      "vars.json": JSON.stringify({ a: "from-file", b: "from-file", c: "from-file" }),
    });
    const result = await kiln(["inspect", "-C", dir.dir, "-var-file", join(dir.dir, "vars.json"), "--var", "c=from-flag", "--json"], {
      env: { KILN_VAR_b: "from-env", KILN_VAR_c: "from-env" },
    });
    expect(JSON.parse(result.stdout).variables).toEqual({ a: "from-file", b: "from-env", c: "from-flag" });
  });

  it("loads a typed kiln.config.ts written with defineConfig", async () => {
    const dir = fileURLToPath(new URL("./fixtures/ts-config", import.meta.url));
    const result = await kiln(["inspect", "-C", dir, "--json"]);
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout).images).toEqual([
      expect.objectContaining({ name: "typed", driver: "docker", source: "debian:bookworm", provision: ["shell"] }),
    ]);
  });

  it("help lists commands and each command's options", async () => {
    expect((await kiln(["help"])).stdout).toContain("validate");
    const build = await kiln(["help", "build"]);
    expect(build.stdout).toContain("--on-error <mode>");
    expect((await kiln(["build", "--help"])).stdout).toBe(build.stdout);
    expect((await kiln(["help", "nope"])).code).toBe(2);
  });

  it("schema prints a JSON Schema that includes the docker driver's and shell provisioner's options, and the EC2 driver's when installed", async () => {
    const schema = JSON.parse((await kiln(["schema"])).stdout);
    const text = JSON.stringify(schema);
    expect(schema.title).toBe("Kiln bake file");
    expect(text).toContain("privileged");
    expect(text).toContain("expect_disconnect");
    const ec2 = schema.properties.images.additionalProperties.allOf.find(
      (rule: { if: { properties: { driver: { const: string } } } }) => rule.if.properties.driver.const === "ec2",
    );
    expect(Object.keys(ec2.then.properties)).toEqual(
      expect.arrayContaining(["ami_name", "ami_regions", "encrypt_boot", "provision", "verify"]),
    );
  });

  it("the shipped schema file matches the command's output", async () => {
    const shipped = await readFile(new URL("../schema/kiln.schema.json", import.meta.url), "utf8");
    expect(JSON.parse(shipped)).toEqual(JSON.parse((await kiln(["schema"])).stdout));
  });
});

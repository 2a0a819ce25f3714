import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, type Machine } from "@kiln/core";
import { createTestContext, execOk, testPluginInit } from "@kiln/test-suite";
import file, { type FileOptions } from "../src/index.js";
import { fixtureOptions, launchFixture } from "@kiln/driver-docker/testing";

const provisioner = file(testPluginInit("provisioner", "file"));
let dir: string;

beforeAll(async () => {
  await fixtureOptions(); // builds the fixture image on first use, under the long hook timeout
  dir = await mkdtemp(join(tmpdir(), "kiln-file-it-"));
  await mkdir(join(dir, "site/css"), { recursive: true });
  await writeFile(join(dir, "site/index.html"), "<h1>hello</h1>\n");
  await writeFile(join(dir, "site/css/main.css"), "body { margin: 0 }\n");
  await writeFile(join(dir, "app.conf"), "port = 8080\n");
  await writeFile(join(dir, "run.sh"), "#!/bin/sh\necho run\n");
  await chmod(join(dir, "run.sh"), 0o750);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs steps (validated like the loader does) in order on one fresh container, then hands it to `check`. */
async function provision(steps: unknown[], check: (machine: Machine) => Promise<void> = async () => {}): Promise<void> {
  await using test = createTestContext({ cwd: dir });
  await using machine = await launchFixture(test.ctx);
  for (const input of steps) {
    const result = await provisioner.schema["~standard"].validate(input);
    if (result.issues) throw new Error(`invalid options ${JSON.stringify(input)}: ${JSON.stringify(result.issues)}`);
    await provisioner.run(test.ctx, machine, result.value as FileOptions);
  }
  await check(machine);
}

const tree = async (machine: Machine, path: string) =>
  (await execOk(machine, `cd ${path} && find . -mindepth 1 | sort`)).trim().split("\n");
const modeOf = async (machine: Machine, path: string) => (await execOk(machine, `stat -c %a ${path}`)).trim();

describe("file provisioner uploads", () => {
  it("puts a file exactly at destination (creating parents), or inside a destination ending in /", async () => {
    await provision(
      [
        { source: "app.conf", destination: "/opt/deep/nested/app.conf" },
        { source: "./app.conf", destination: "/etc/app/" },
      ],
      async (machine) => {
        expect(await execOk(machine, "cat /opt/deep/nested/app.conf")).toBe("port = 8080\n");
        expect(await execOk(machine, "cat /etc/app/app.conf")).toBe("port = 8080\n");
      },
    );
  });

  it("uploads a directory without trailing slash as a directory inside destination", async () => {
    await provision([{ source: "./site", destination: "/var/www" }], async (machine) => {
      expect(await tree(machine, "/var/www")).toEqual(["./site", "./site/css", "./site/css/main.css", "./site/index.html"]);
      expect(await execOk(machine, "cat /var/www/site/index.html")).toBe("<h1>hello</h1>\n");
    });
  });

  it("uploads a directory's contents with a trailing slash, keeping what destination already holds", async () => {
    await provision(
      [
        { content: "keep me\n", destination: "/var/www/existing.txt" },
        { source: "./site/", destination: "/var/www/" },
      ],
      async (machine) => {
        expect(await tree(machine, "/var/www")).toEqual(["./css", "./css/main.css", "./existing.txt", "./index.html"]);
        expect(await execOk(machine, "cat /var/www/css/main.css /var/www/existing.txt")).toBe("body { margin: 0 }\nkeep me\n");
      },
    );
  });

  it("copies several sources into a directory", async () => {
    await provision([{ sources: ["app.conf", "site", "run.sh"], destination: "/srv/app/" }], async (machine) => {
      expect(await tree(machine, "/srv/app")).toEqual([
        "./app.conf",
        "./run.sh",
        "./site",
        "./site/css",
        "./site/css/main.css",
        "./site/index.html",
      ]);
    });
  });

  it("writes content to the destination file, 0644 unless mode says otherwise", async () => {
    await provision(
      [
        { content: "welcome\n", destination: "/etc/motd" },
        { content: "#!/bin/sh\necho hi\n", destination: "/usr/local/bin/hi", mode: "0755" },
      ],
      async (machine) => {
        expect(await execOk(machine, "cat /etc/motd")).toBe("welcome\n");
        expect(await modeOf(machine, "/etc/motd")).toBe("644");
        expect(await modeOf(machine, "/usr/local/bin/hi")).toBe("755");
        expect(await execOk(machine, "hi")).toBe("hi\n");
      },
    );
  });

  it("uploads modes as git checks files out (0755 if executable, else 0644; directories 0755), whatever the local umask", async () => {
    await chmod(join(dir, "app.conf"), 0o660);
    await chmod(join(dir, "site/index.html"), 0o664);
    await chmod(join(dir, "site/css"), 0o770);
    try {
      await provision(
        [
          { source: "run.sh", destination: "/opt/run.sh" },
          { source: "app.conf", destination: "/opt/app.conf" },
          { source: "site", destination: "/srv/" },
        ],
        async (machine) => {
          expect(await modeOf(machine, "/opt/run.sh")).toBe("755");
          expect(await modeOf(machine, "/opt/app.conf")).toBe("644");
          expect(await modeOf(machine, "/srv/site/index.html")).toBe("644");
          expect(await modeOf(machine, "/srv/site/css")).toBe("755");
        },
      );
    } finally {
      await chmod(join(dir, "app.conf"), 0o644);
      await chmod(join(dir, "site/index.html"), 0o644);
      await chmod(join(dir, "site/css"), 0o755);
    }
  });

  it("applies mode to every uploaded file, directories staying 0755", async () => {
    await provision(
      [
        { source: "app.conf", destination: "/opt/secret.conf", mode: 0o600 },
        { source: "site", destination: "/opt/", mode: "0640" },
      ],
      async (machine) => {
        expect(await modeOf(machine, "/opt/secret.conf")).toBe("600");
        expect(await modeOf(machine, "/opt/site/index.html")).toBe("640");
        expect(await modeOf(machine, "/opt/site/css/main.css")).toBe("640");
        expect(await modeOf(machine, "/opt/site/css")).toBe("755");
      },
    );
  });

  it("reports a missing local source as E_CONFIG naming it", async () => {
    const error = await provision([{ source: "nope/missing.conf", destination: "/etc/" }]).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_CONFIG" });
    expect((error as KilnError).message).toContain("nope/missing.conf");
  });
});

describe("file provisioner downloads", () => {
  const seed = "mkdir -p /srv/out/sub && echo a > /srv/out/a.txt && echo b > /srv/out/sub/b.txt && echo log > /var/log/app.log";
  /** Runs download steps on a fresh seeded container; destinations are relative to a fresh local directory under the bake dir. */
  const download = async (steps: FileOptions[], check: (local: string) => Promise<void>) => {
    const local = await mkdtemp(join(dir, "download-"));
    try {
      const relative = local.slice(dir.length + 1);
      await using test = createTestContext({ cwd: dir });
      await using machine = await launchFixture(test.ctx);
      await execOk(machine, seed);
      for (const step of steps) {
        const opts = { ...step, destination: `${relative}/${step.destination}` };
        const result = await provisioner.schema["~standard"].validate(opts);
        if (result.issues) throw new Error(JSON.stringify(result.issues));
        await provisioner.run(test.ctx, machine, result.value as FileOptions);
      }
      await check(local);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  };
  const listing = async (path: string) => (await readdir(path, { recursive: true })).sort();

  it("downloads a file exactly to destination, or inside a destination ending in /", async () => {
    await download(
      [
        { source: "/var/log/app.log", destination: "logs/renamed.log", direction: "download" },
        { source: "/var/log/app.log", destination: "into/", direction: "download" },
      ],
      async (local) => {
        expect(await readFile(join(local, "logs/renamed.log"), "utf8")).toBe("log\n");
        expect(await readFile(join(local, "into/app.log"), "utf8")).toBe("log\n");
      },
    );
  });

  it("downloads a directory without trailing slash as a directory, with one its contents", async () => {
    await download(
      [
        { source: "/srv/out", destination: "as-dir", direction: "download" },
        { source: "/srv/out/", destination: "contents", direction: "download" },
      ],
      async (local) => {
        expect(await listing(join(local, "as-dir"))).toEqual(["out", "out/a.txt", "out/sub", "out/sub/b.txt"]);
        expect(await listing(join(local, "contents"))).toEqual(["a.txt", "sub", "sub/b.txt"]);
        expect(await readFile(join(local, "contents/sub/b.txt"), "utf8")).toBe("b\n");
      },
    );
  });

  it("fails with E_PROVISION when the source is not on the machine", async () => {
    const error = await download([{ source: "/no/such/file", destination: "x", direction: "download" }], async () => {}).catch(
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_PROVISION" });
    expect((error as KilnError).message).toContain("/no/such/file not found on machine");
  });
});

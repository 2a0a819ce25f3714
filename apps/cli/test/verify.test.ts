import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import Docker from "dockerode";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtureImage, FIXTURE_IMAGE, listDockerResources, removeDockerResources } from "@kiln/driver-docker/testing";
import { kiln, project, runIdOf } from "./helpers.js";

const docker = new Docker();
const runs: string[] = [];
afterEach(async () => {
  for (const runId of runs.splice(0)) await removeDockerResources(runId);
});
beforeAll(() => ensureFixtureImage(), 600_000);

const containersOf = async (runId: string) => (await listDockerResources(runId)).filter((resource) => resource.startsWith("container"));

/** An app image: a user, a config file with owner and mode, and a python3 web server on port 7000 as its command. */
const APP_IMAGE = `
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell:
          inline:
            - useradd --uid 1234 --home-dir /srv/app --shell /bin/sh --groups adm appuser
            - mkdir -p /srv/app && echo "hello from the app" > /srv/app/index.html
            - printf 'listen=7000\\n' > /etc/app.conf && chown appuser:adm /etc/app.conf && chmod 0640 /etc/app.conf
    changes: { cmd: ["python3", "-m", "http.server", "7000", "--directory", "/srv/app"] }`;

describe("verify: every check kind", { timeout: 180_000 }, () => {
  it("passes when the image is right", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  app:${APP_IMAGE}
    verify:
      checks:
        - command: { run: "python3 --version", stdout_matches: "^Python 3" }
        - file: { path: /etc/app.conf, mode: "0640", owner: "appuser:adm", contains: listen=7000 }
        - file: { path: /etc/nginx, exists: false }
        - port: { port: 7000, from_host: true }
        - port: { port: 7001, listening: false }
        - http: { port: 7000, path: /index.html, body_contains: hello from the app }
        - http: { port: 7000, from: machine, body_matches: "hello from .* app" }
        - http: { port: 7000, path: /missing, status: 404 }
        - process: python3
        - service: python3
        - package: { name: python3, version: "3.11*" }
        - package: { name: nginx, installed: false }
        - user: { name: appuser, uid: 1234, groups: [adm], home: /srv/app, shell: /bin/sh }
        - user: { name: nobody-here, exists: false }
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    for (const kind of ["command", "file", "port", "http", "process", "service", "package", "user"]) {
      expect(result.stdout).toMatch(new RegExp(`app: ✓ ${kind} `));
    }
    expect(result.stdout).not.toContain("✗");
    expect(await containersOf(runId)).toEqual([]);
  });

  it("fails with every failed check's expected and actual, removes the artefact and every verify machine", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  app:${APP_IMAGE}
    verify:
      checks:
        - command: { run: "echo oops >&2; exit 3" }
        - file: { path: /etc/app.conf, mode: "0600" }
        - file: { path: /etc/app.conf, owner: root }
        - { port: 7001, within: 1s }
        - { http: { port: 7000, path: /missing }, within: 1s }
        - { process: nginx, within: 1s }
        - { service: nginx, within: 1s }
        - package: nginx
        - user: { name: appuser, uid: 999 }
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(/9 of 9 verify checks failed/);
    const failures: [string, string, string][] = [
      ["command", "exit code 0", "exit code 3: oops"],
      ["file", "mode 0600", "mode 0640"],
      ["file", "owner root", "owner appuser:adm"],
      ["port", "tcp port 7001 listening", "nothing listening (listening: 7000)"],
      ["http", "HTTP 200 from :7000/missing", "HTTP 404"],
      ["process", 'process "nginx" running', "not running"],
      ["service", 'process "nginx" running', "not running"],
      ["package", "package nginx installed", "not installed"],
      ["user", "uid 999", "uid 1234"],
    ];
    for (const [kind, expected, actual] of failures) {
      expect(result.stdout).toMatch(
        new RegExp(`✗ ${kind} [^\\n]*\\n\\s+app:\\s+expected: ${escapeRegExp(expected)}\\n\\s+app:\\s+actual:\\s+${escapeRegExp(actual)}`),
      );
    }
    expect(await listDockerResources(runId)).toEqual([]);
  });
});

describe("verify: runtime configuration is injected at boot, not baked", { timeout: 180_000 }, () => {
  /** A service that starts only when PORT is given, from the environment or /etc/default/web. */
  const SERVICE = `
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["mkdir -p /srv && echo up > /srv/index.html"] }
      - file: { source: ./web.sh, destination: /usr/local/bin/web, mode: "0755" }
    changes: { cmd: ["/usr/local/bin/web"] }
    runtime_only: [/etc/default/web]`;

  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${PORT:?…} is shell, not a template.
  const WEB_SH =
    '#!/bin/sh\n[ -r /etc/default/web ] && . /etc/default/web\n: "${PORT:?PORT is not set}"\nexec python3 -m http.server "$PORT" --directory /srv\n';

  it("the same image listens on each port it is given, by env, file or boot script", async () => {
    await using dir = await project({
      "web.sh": WEB_SH,
      "kiln.yaml": `
images:
  web:${SERVICE}
    verify:
      - name: env 8080
        runtime: { env: { PORT: "8080" } }
        checks: [{ http: { port: 8080, body_contains: up } }, { port: { port: 9090, listening: false } }]
      - name: file 9090
        runtime: { files: { /etc/default/web: "PORT=9090" } }
        checks: [{ http: { port: 9090, body_contains: up } }]
      - name: boot script 7070
        runtime: { env: { STAGE_PORT: "7070" }, boot_script: 'echo "PORT=$STAGE_PORT" > /etc/default/web' }
        checks: [{ port: { port: 7070, from_host: true } }]
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    runs.push(runIdOf(result.stdout, result.stderr));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/✓ http :8080\/ \[env 8080\]/);
    expect(result.stdout).toMatch(/✓ http :9090\/ \[file 9090\]/);
    expect(result.stdout).toMatch(/✓ port 7070 \[boot script 7070\]/);
  });

  it("without PORT the service does not start, and the bake fails saying so", async () => {
    await using dir = await project({
      "web.sh": WEB_SH,
      "kiln.yaml": `\nimages:\n  web:${SERVICE}\n    verify:\n      checks: [{ http: { port: 8080 } }]\n`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout).toBe(1);
    expect(result.stdout).toMatch(/is not running: its command exited with code 2; last output:\s+.*PORT is not set/);
    expect(await listDockerResources(runId)).toEqual([]);
  });

  it("a runtime-only path baked into the image fails the bake and leaves nothing behind", async () => {
    await using dir = await project({
      "web.sh": WEB_SH,
      "kiln.yaml": `\nimages:\n  web:${SERVICE.replace("    changes:", '      - shell: { inline: ["echo PORT=8080 > /etc/default/web"] }\n    changes:')}\n`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout).toBe(1);
    expect(result.stdout).toMatch(/\/etc\/default\/web exists in the image, but is runtime-only: supply it at boot/);
    expect(await listDockerResources(runId)).toEqual([]);
  });

  it("a secret written into a config file fails the bake without printing it, and leaves nothing behind", async () => {
    const secret = "db-pass-5e6f7a8b9c";
    await using dir = await project({
      "kiln.yaml": `
variables:
  db_password: { sensitive: true }
images:
  leaky:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { env: { PASS: "{{ db_password }}" }, inline: ["mkdir -p /opt/app", "echo password=$PASS > /opt/app/db.conf", "echo fine > /opt/app/other.conf"] }
    runtime_only: [db_password]
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir, "--var", `db_password=${secret}`]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout).toBe(1);
    expect(result.stdout).toMatch(
      /\/opt\/app\/db\.conf contains the value of variable "db_password", which must be supplied at boot, not baked/,
    );
    expect(result.stdout).not.toMatch(/other\.conf contains/);
    expect(result.stdout + result.stderr).not.toContain(secret);
    expect(await listDockerResources(runId)).toEqual([]);
  });

  it("warns when provisioning writes per-instance state", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  stateful:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["echo 0123456789abcdef0123456789abcdef > /etc/machine-id"] }
    runtime_only: []
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    runs.push(runIdOf(result.stdout, result.stderr));
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/warning: provisioning wrote \/etc\/machine-id: per-instance state/);
  });
});

describe("kiln verify", { timeout: 180_000 }, () => {
  it("verifies an existing artefact by image name or tag, with the bake file's or another runtime configuration", async () => {
    const tag = `kiln-cli-test/verify-${Math.random().toString(36).slice(2, 8)}:1`;
    await using dir = await project({
      "kiln.yaml": `
images:
  svc:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision: [{ shell: { inline: ["mkdir -p /srv && echo ok > /srv/index.html"] } }]
    changes: { cmd: ["sh", "-c", "exec python3 -m http.server \${PORT:-80} --directory /srv"] }
    verify:
      runtime: { env: { PORT: "8080" } }
      checks: [{ http: { port: 8080, body_contains: ok }, within: 5s }]
    tags: ["${tag}"]
`,
    });
    const built = await kiln(["build", "--force", "-C", dir.dir]);
    const buildRun = runIdOf(built.stdout, built.stderr);
    runs.push(buildRun);
    expect(built.code, built.stdout).toBe(0);
    const artifact = (await docker.getImage(tag).inspect()).Id;

    const byName = await kiln(["verify", "svc", "-C", dir.dir]);
    expect(byName.code, byName.stdout + byName.stderr).toBe(0);
    expect(byName.stdout).toMatch(/✓ http :8080\//);
    expect(byName.stdout).toContain(`verified svc (${artifact.slice(7, 19)}`);

    await writeFile(join(dir.dir, "other-port.yaml"), "env: { PORT: '9999' }\n");
    const elsewhere = await kiln(["verify", tag, "-C", dir.dir, "--runtime-file", join(dir.dir, "other-port.yaml"), "--json"]);
    expect(elsewhere.code, elsewhere.stdout).toBe(1);
    const events = elsewhere.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(events.find((event) => event.type === "verify.check")).toMatchObject({
      ok: false,
      kind: "http",
      expected: "HTTP 200 from :8080/",
    });
    expect(events.at(-1)).toMatchObject({ type: "verify.result", ok: false, artifact });
    // Verifying never deletes an existing artefact, and its machines are gone.
    expect((await docker.getImage(tag).inspect()).Id).toBe(artifact);
    expect(await containersOf(buildRun)).toEqual([]);
    const leftover = await docker.listContainers({ all: true, filters: { label: ["dev.kiln.image=svc"] } });
    expect(leftover).toEqual([]);

    const unknown = await kiln(["verify", "nope", "-C", dir.dir]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('"nope" is neither an image of this bake file nor an artefact id or tag');
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { z } from "zod";
import { formatDiagnostic, KilnError } from "../errors.js";
import { missingTools } from "../kit/tools.js";
import { defineDriver, defineProvisioner, type ConnectionKind, type Driver, type Provisioner } from "../types.js";
import { loadProject } from "./load.js";

const never = async (): Promise<never> => {
  throw new Error("validation launches nothing");
};

/** A driver whose host tool may be missing, and whose machines are reached over `kinds`. */
function driverNeeding(command: string, kinds: ConnectionKind[]) {
  return defineDriver(
    (): Driver<{ source: string }> => ({
      name: "box",
      schema: z.strictObject({ source: z.string() }),
      connectionKinds: kinds,
      preflight: () => missingTools([{ command, install: "apt-get install -y box-tools" }]),
      resolveSource: never,
      launch: never,
      capture: never,
      launchArtifact: never,
      findArtifacts: never,
      tag: never,
      remove: never,
    }),
  );
}

/** A provisioner that reaches machines from outside, so it can only work on some connection kinds. */
const playbook = defineProvisioner(
  (): Provisioner<{ file: string }> => ({
    name: "playbook",
    schema: z.strictObject({ file: z.string() }),
    preflight: (_opts, target) =>
      target.connectionKinds?.includes("ssh")
        ? []
        : [{ message: `cannot reach machines of driver "${target.driver}"`, hint: "use a driver whose machines have SSH" }],
    fingerprint: never,
    run: never,
  }),
);

async function validate(yaml: string, driver: ReturnType<typeof driverNeeding>): Promise<KilnError | undefined> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-preflight-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "kiln.yaml"), yaml);
  const loading = loadProject(join(dir, "kiln.yaml"), { plugins: { registry: { drivers: { box: driver }, provisioners: { playbook } } } });
  return loading.then(
    () => undefined,
    (error: unknown) => error as KilnError,
  );
}

const BAKE_FILE = [
  "images:",
  "  web:",
  "    driver: box",
  "    source: base",
  "    provision:",
  "      - playbook: { file: site.yml }",
  "",
].join("\n");

describe("preflight: kiln validate sees the host before anything runs", () => {
  it("reports a missing host tool at the image's driver, with the install command, exit 2", async () => {
    const error = await validate(BAKE_FILE, driverNeeding("kiln-no-such-tool", ["ssh"]));
    expect(error).toBeInstanceOf(KilnError);
    expect(error?.exitCode).toBe(2);
    expect(error?.diagnostics.map((d) => formatDiagnostic({ ...d, file: "kiln.yaml" }))).toEqual([
      "kiln.yaml:3:5: images.web.driver: kiln-no-such-tool not found on this host — install it: apt-get install -y box-tools",
    ]);
  });

  it("reports a provisioner that cannot work with the image's driver at the step", async () => {
    const error = await validate(BAKE_FILE, driverNeeding("sh", ["docker"]));
    expect(error?.diagnostics.map((d) => formatDiagnostic({ ...d, file: "kiln.yaml" }))).toEqual([
      'kiln.yaml:6:9: images.web.provision[0].playbook: cannot reach machines of driver "box" — use a driver whose machines have SSH',
    ]);
  });

  it("passes when the tool is installed and the pairing works", async () => {
    expect(await validate(BAKE_FILE, driverNeeding("sh", ["ssh"]))).toBeUndefined();
  });

  it("reports a preflight that throws as a problem, not a crash", async () => {
    const broken = defineDriver((init) => ({
      ...driverNeeding("sh", ["ssh"])(init),
      preflight: () => {
        throw new Error("cannot read /etc/box.conf");
      },
    }));
    const error = await validate(BAKE_FILE, broken);
    expect(error?.diagnostics.map((d) => d.message)).toEqual(["host check failed: cannot read /etc/box.conf"]);
  });
});

describe("secrets never reach places that show them", () => {
  /** A driver that says its `labels_on_image` option is written into the image's metadata. */
  const exposing = defineDriver((init) => ({
    ...driverNeeding("sh", ["ssh"])(init),
    schema: z.strictObject({ source: z.string(), labels_on_image: z.record(z.string(), z.string()).optional() }),
    exposedOptions: [{ path: ["labels_on_image"], where: "the image's metadata" }],
  }));
  const secretFile = (driverLine: string) =>
    ["variables:", "  token: { sensitive: true, default: hunter2hunter2 }", "images:", "  web:", driverLine, "    source: base", ""].join(
      "\n",
    );

  it("refuses a sensitive value in an option the driver exposes, at its position, without showing it", async () => {
    const yaml = secretFile('    driver: box\n    labels_on_image: { auth: "token={{ token }}" }');
    const error = await validate(yaml, exposing);
    expect(error?.diagnostics.map((d) => formatDiagnostic({ ...d, file: "kiln.yaml" }))).toEqual([
      `kiln.yaml:6:22: images.web.labels_on_image: sensitive variable "token" would be written into the image's metadata — give it at boot instead (verify.runtime env or files), or to commands through env:, which is never shown`,
    ]);
  });

  it("shows no secret in a problem about a value made from it", async () => {
    const error = await validate(secretFile('    driver: "{{ token }}"'), driverNeeding("sh", ["ssh"]));
    expect(JSON.stringify(error?.diagnostics)).not.toContain("hunter2");
    expect(error?.diagnostics[0]?.message).toBe(
      'driver "<sensitive>" not found (looked for @kiln/driver-<sensitive>, kiln-driver-<sensitive>, <sensitive>)',
    );
  });
});

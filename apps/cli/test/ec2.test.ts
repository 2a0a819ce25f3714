import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DescribeImagesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { type Emulator, resourcesTagged, startEmulator } from "@kiln/ec2-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kiln, project, runIdOf } from "./helpers.js";

const example = fileURLToPath(new URL("../../../examples/ec2/", import.meta.url));
// The SDK's default credential chain reads these; the emulator checks requests are signed, not by whom.
const credentials = { AWS_ACCESS_KEY_ID: "AKIDKILNTEST", AWS_SECRET_ACCESS_KEY: "kiln-test-secret", AWS_EC2_METADATA_DISABLED: "true" };

describe("examples/ec2 through the EC2 emulator", () => {
  let emulator: Emulator;
  beforeAll(async () => {
    emulator = await startEmulator({ transitionDelayMs: 200 });
  });
  afterAll(() => emulator?.stop());

  it("kiln build bakes the AMI with the shell provisioner and verifies it from a new instance", async () => {
    const run = await kiln(["build", "--force", "--var", `endpoint=${emulator.endpoint}`], { cwd: example, env: credentials });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const runId = runIdOf(run.stdout, run.stderr);
    expect(run.stdout).toMatch(/web-ami: ✓ http :8080/);
    // Reached from this machine at the instance's own address, through the port its verify security group opened.
    expect(run.stdout).toMatch(/web-ami: ✓ port 8080\n/);
    expect(run.stdout).toMatch(/web-ami: baked ami-\w+ as kiln-example\/web-ami:1\.0\.0/);
    const amiId = /baked (ami-\w+)/.exec(run.stdout)?.[1];
    const client = new EC2Client({
      region: "us-east-1",
      endpoint: emulator.endpoint,
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
    });
    const [image] = (await client.send(new DescribeImagesCommand({ ImageIds: [amiId as string] }))).Images ?? [];
    expect(image?.Name).toMatch(/^kiln-web-1\.0\.0-\d{8}-\d{6}$/);
    expect(Object.fromEntries((image?.Tags ?? []).map((tag) => [tag.Key, tag.Value]))).toMatchObject({
      app: "web",
      "dev.kiln.image": "web-ami",
      "dev.kiln.verify": "passed",
      "kiln:ref:kiln-example/web-ami:1.0.0": "",
    });
    // Only the AMI and its snapshot outlive the bake: no instance, key pair or security group.
    const left = resourcesTagged(emulator.resources(), "dev.kiln.build", runId);
    expect(left.sort()).toEqual([amiId, image?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId].sort());
    // The credentials reach the SDK only: not the output, the manifest or any tag.
    const manifest = readFileSync(join(example, "kiln-manifest.json"), "utf8");
    rmSync(join(example, "kiln-manifest.json"));
    for (const text of [run.stdout, run.stderr, manifest, JSON.stringify(image?.Tags)])
      expect(text).not.toMatch(/AKIDKILNTEST|kiln-test-secret/);
  });

  it("the fleet works on AMIs: an unchanged rebuild is cached, kiln images lists it, promote and provenance find it", async () => {
    const endpoint = ["--var", `endpoint=${emulator.endpoint}`];
    const first = await kiln(["build", ...endpoint], { cwd: example, env: credentials });
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const again = await kiln(["build", ...endpoint], { cwd: example, env: credentials });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const amiId = /web-ami: cached (ami-\w+)/.exec(again.stdout)?.[1];
    expect(amiId, again.stdout).toBeDefined();

    const images = await kiln(["images", ...endpoint], { cwd: example, env: credentials });
    expect(images.stdout).toContain(`web-ami  ${amiId}`);
    const promoted = await kiln(["promote", "web-ami", "prod", ...endpoint], { cwd: example, env: credentials });
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(promoted.stdout).toContain(`web-ami: prod → ${amiId}`);
    expect((await kiln(["images", ...endpoint], { cwd: example, env: credentials })).stdout).toMatch(
      new RegExp(`web-ami  ${amiId}.*channels: prod`),
    );
    const provenance = await kiln(["provenance", amiId as string, ...endpoint], { cwd: example, env: credentials });
    expect(provenance.code, provenance.stderr).toBe(0);
    expect(provenance.stdout).toMatch(/source\s.*debian-12-amd64-20261101 \(ami-0kiln0debian12\)/);
  });

  it("a fresh machine (another checkout, an empty home, no Kiln state) bakes nothing: AMIs are account-wide", async () => {
    const endpoint = ["--var", `endpoint=${emulator.endpoint}`];
    const first = await kiln(["build", ...endpoint], { cwd: example, env: credentials });
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const amiId = /web-ami: (?:baked|cached) (ami-\w+)/.exec(first.stdout)?.[1];
    // The same project checked out elsewhere: its directory name is the project name, its plugins are installed there.
    const home = mkdtempSync(join(tmpdir(), "kiln-fresh-home-"));
    const checkout = join(home, "src", "ec2");
    try {
      mkdirSync(checkout, { recursive: true });
      for (const file of ["kiln.yaml", "install-server.sh"]) copyFileSync(join(example, file), join(checkout, file));
      symlinkSync(join(example, "node_modules"), join(checkout, "node_modules"));
      const fresh = { ...credentials, HOME: home, KILN_STATE_DIR: join(home, "state"), KILN_CACHE_DIR: join(home, "cache") };
      const again = await kiln(["build", ...endpoint], { cwd: checkout, env: fresh });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toContain(`web-ami: cached ${amiId}`);
      expect(again.stdout).not.toMatch(/: (launch|baked)/);
    } finally {
      rmSync(home, { recursive: true, force: true });
      rmSync(join(example, "kiln-manifest.json"), { force: true });
    }
  });

  it("Ctrl-C while the AMI is being created exits 130 and leaves nothing behind", async () => {
    let sent = false;
    const run = await kiln(["build", "--force", "--var", `endpoint=${emulator.endpoint}`], {
      cwd: example,
      env: credentials,
      onStdout: (chunk, child) => {
        if (!sent && /waiting for AMI ami-\w+ in us-east-1 to be available/.test(chunk)) {
          sent = true;
          child.kill("SIGINT");
        }
      },
    });
    expect(sent).toBe(true);
    expect(run.code).toBe(130);
    expect(resourcesTagged(emulator.resources(), "dev.kiln.build", runIdOf(run.stdout, run.stderr))).toEqual([]);
  });

  it("--on-error=abort keeps the instance and prints an ssh command that logs in with the saved key", async () => {
    const yaml = [
      "images:",
      "  broken:",
      "    driver: ec2",
      "    region: us-east-1",
      `    endpoint: ${emulator.endpoint}`,
      "    source: ami-0kiln0debian12",
      "    instance_type: t3.micro",
      "    ssh_username: admin",
      "    provision:",
      '      - shell: { inline: ["echo half-done > /tmp/state", "exit 4"] }',
    ].join("\n");
    await using dir = await project({ "kiln.yaml": yaml });
    const run = await kiln(["build", "--force", "-C", dir.dir, "--on-error=abort"], { env: credentials });
    expect(run.code).toBe(1);
    const ssh = /attach with:\n\s+(ssh -i (\S+) -o UserKnownHostsFile=(\S+) -p 22 admin@(127\.0\.0\.\d+))/.exec(run.stdout);
    expect(ssh, run.stdout).not.toBeNull();
    const [, , keyFile, knownHosts, host] = ssh as unknown as [string, string, string, string, string];
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    // The printed command works as printed, checking the host key Kiln pinned: OpenSSH logs in and finds the failed step's state.
    const state = execFileSync(
      "ssh",
      [
        "-i",
        keyFile,
        "-o",
        `UserKnownHostsFile=${knownHosts}`,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        `admin@${host}`,
        "cat /tmp/state",
      ],
      {
        encoding: "utf8",
      },
    );
    rmSync(dirname(keyFile), { recursive: true, force: true });
    expect(state).toBe("half-done\n");
    const kept = resourcesTagged(emulator.resources(), "dev.kiln.build", runIdOf(run.stdout, run.stderr));
    expect(kept.some((id) => id.startsWith("i-"))).toBe(true);
  });

  it("a cleanup EC2 refuses for good ends the build within --cleanup-timeout, exit 1, naming what is left and how to remove it", async () => {
    // As with an IAM policy that lacks ec2:TerminateInstances: every call is refused.
    for (let nth = 1; nth <= 200; nth++) emulator.injectFault("TerminateInstances", { code: "UnauthorizedOperation", status: 403, nth });
    try {
      const run = await kiln(["build", "--force", "--cleanup-timeout", "5s", "--var", `endpoint=${emulator.endpoint}`], {
        cwd: example,
        env: credentials,
      });
      expect(run.code, run.stdout + run.stderr).toBe(1);
      const left = resourcesTagged(emulator.resources(), "dev.kiln.build", runIdOf(run.stdout, run.stderr)).filter((id) =>
        id.startsWith("i-"),
      );
      expect(left.length).toBeGreaterThan(0);
      for (const instance of left) {
        expect(run.stdout).toMatch(
          new RegExp(`remove it by hand: aws ec2 terminate-instances --region us-east-1 --instance-ids ${instance}`),
        );
      }
    } finally {
      emulator.clearFaults();
      rmSync(join(example, "kiln-manifest.json"), { force: true });
    }
  });

  it("an unreachable endpoint fails fast with a hint to start the emulator", async () => {
    const run = await kiln(["build", "--force", "--var", "endpoint=http://127.0.0.1:9"], { cwd: example, env: credentials });
    expect(run.code).toBe(1);
    expect(run.stdout + run.stderr).toMatch(/ECONNREFUSED[\s\S]*is the EC2 emulator running/);
  });

  it("kiln validate refuses a bad option with its place in the bake file, exit 2", async () => {
    const run = await kiln(["validate", "--var", "region="], { cwd: example, env: credentials });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/kiln\.yaml:\d+:\d+: images\.web-ami\.region/);
  });
});

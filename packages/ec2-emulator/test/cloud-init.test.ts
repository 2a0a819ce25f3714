import {
  CreateImageCommand,
  CreateKeyPairCommand,
  DescribeImagesCommand,
  type EC2Client,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
} from "@aws-sdk/client-ec2";
import { connectSsh } from "@kiln/communicator-ssh";
import Docker from "dockerode";
import { beforeAll, describe, expect, it } from "vitest";
import { BASE_AMI_ID, CLOUD_INIT_AMI_ID, CLOUD_INIT_AMI_NAME, DEBIAN_OWNER_ID, ensureCloudInitImage } from "../src/index.js";
import { ec2Client, shell, testEmulator, waitForFile, waitForImage, waitForState } from "./helpers.js";

const HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub";
const BOOT_FINISHED = "/var/lib/cloud/instance/boot-finished";
const SEED = "/var/lib/cloud/seed/nocloud";

const CLOUD_CONFIG = [
  "#cloud-config",
  "write_files:",
  "  - path: /etc/kiln-written",
  "    content: written by cloud-init",
  "runcmd:",
  "  - echo ran >> /var/tmp/runcmd-runs",
  "",
].join("\n");

/** Launches one instance with a fresh key pair and returns what a test needs to reach it over SSH. */
async function launch(client: EC2Client, imageId: string, userData: string) {
  const keyName = `k-${Math.random().toString(36).slice(2)}`;
  const { KeyMaterial = "" } = await client.send(new CreateKeyPairCommand({ KeyName: keyName, KeyType: "ed25519" }));
  const run = await client.send(
    new RunInstancesCommand({
      ImageId: imageId,
      KeyName: keyName,
      MinCount: 1,
      MaxCount: 1,
      UserData: Buffer.from(userData).toString("base64"),
    }),
  );
  const instanceId = run.Instances?.[0]?.InstanceId ?? "";
  const instance = await waitForState(client, instanceId, "running");
  return { instanceId, host: instance.PublicIpAddress ?? "", privateKey: KeyMaterial };
}

/** Runs a command as `admin` over SSH (what a bake does), once cloud-init finished: `cloud-init status --wait` blocks until then. */
async function overSsh(target: { host: string; privateKey: string }, command: string): Promise<string> {
  await using machine = await connectSsh({ host: target.host, port: 22, user: "admin", privateKey: target.privateKey, deadlineMs: 60_000 });
  const result = await machine.exec(`cloud-init status --wait >/dev/null; ${command}`);
  return result.stdout.trim();
}

describe.concurrent("cloud-init's NoCloud seed", () => {
  beforeAll(async () => {
    // Once per machine (later runs find the image); an emulator would otherwise build it while the first instance is pending.
    await ensureCloudInitImage(new Docker());
  });

  it("applies #cloud-config on the cloud-init AMI; a restart reruns no per-instance work; an AMI of it is a new instance", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const [image] = (await client.send(new DescribeImagesCommand({ ImageIds: [CLOUD_INIT_AMI_ID] }))).Images ?? [];
    expect(image).toMatchObject({ Name: CLOUD_INIT_AMI_NAME, OwnerId: DEBIAN_OWNER_ID, Public: true, State: "available" });

    const target = await launch(client, CLOUD_INIT_AMI_ID, CLOUD_CONFIG);
    const first = await overSsh(
      target,
      `cloud-init status; cat /etc/kiln-written; echo; cat /var/tmp/runcmd-runs; cat ${HOST_KEY} ${SEED}/meta-data; ls ${BOOT_FINISHED}`,
    );
    const [status, written, runs, hostKey, ...rest] = first.split("\n");
    expect([status, written, runs]).toEqual(["status: done", "written by cloud-init", "ran"]);
    expect(hostKey).toMatch(/^ssh-ed25519 /);
    expect(rest).toEqual([`instance-id: ${target.instanceId}`, `local-hostname: ip-${target.host.replace(/\./g, "-")}`, BOOT_FINISHED]);
    // The seed holds the user data as given; cloud-init ran it, not the emulator's runner (whose notes would be in the log).
    expect(await shell(emulator, target.instanceId, `cat ${SEED}/user-data`)).toBe(CLOUD_CONFIG.trim().replace(/\n/g, "\r\n"));
    expect(
      await shell(
        emulator,
        target.instanceId,
        "cat /var/lib/cloud/instance/sem/kiln_user_data; grep -c kiln-ec2-emulator: /var/log/cloud-init-output.log",
      ),
    ).toBe("cloud-init\r\n0");

    await client.send(new StopInstancesCommand({ InstanceIds: [target.instanceId] }));
    await waitForState(client, target.instanceId, "stopped");
    // An instance of an AMI committed from this one is a new instance to cloud-init: new instance id in its seed, so runcmd and
    // the other per-instance modules run again (on a disk where the first instance's run left its line), and new host keys.
    const { ImageId = "" } = await client.send(new CreateImageCommand({ InstanceId: target.instanceId, Name: "from-cloud-init" }));
    await waitForImage(client, ImageId);
    const copy = await launch(client, ImageId, CLOUD_CONFIG);
    const [copyStatus, copyRuns, copyHostKey] = (
      await overSsh(copy, `cloud-init status; cat /var/tmp/runcmd-runs | tr '\\n' ' '; echo; cat ${HOST_KEY}`)
    ).split("\n");
    expect([copyStatus, copyRuns]).toEqual(["status: done", "ran ran "]);
    expect(copyHostKey).toMatch(/^ssh-ed25519 /);
    expect(copyHostKey).not.toBe(hostKey);

    // A restart is a reboot to cloud-init: the stages run again, per-instance ones (runcmd, host keys) do not.
    await client.send(new StartInstancesCommand({ InstanceIds: [target.instanceId] }));
    await waitForState(client, target.instanceId, "running");
    const again = await overSsh(target, `cloud-init status; cat /var/tmp/runcmd-runs; cat ${HOST_KEY}; ls ${BOOT_FINISHED}`);
    expect(again.split("\n")).toEqual(["status: done", "ran", hostKey, BOOT_FINISHED]);
  });

  it("runs a #!/bin/sh script through cloud-init on the cloud-init AMI", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const target = await launch(client, CLOUD_INIT_AMI_ID, '#!/bin/sh\necho "ran as $(id -un)" >> /var/tmp/script-runs\n');
    expect((await overSsh(target, `cloud-init status; cat /var/tmp/script-runs; ls ${BOOT_FINISHED}`)).split("\n")).toEqual([
      "status: done",
      "ran as root",
      BOOT_FINISHED,
    ]);
    // cloud-init's own copy of the script, in its scripts-user directory; the emulator's runner did not run it (no exit line).
    expect(
      await shell(emulator, target.instanceId, "ls /var/lib/cloud/instance/scripts; grep -c 'exited with' /var/log/cloud-init-output.log"),
    ).toBe("part-001\r\n0");
  });

  it("still runs user data through the emulator's runner on the base AMI (no cloud-init), with the NoCloud seed written all the same", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const target = await launch(client, BASE_AMI_ID, "#!/bin/sh\necho ran >> /var/tmp/script-runs\n");
    const out = await shell(
      emulator,
      target.instanceId,
      `${waitForFile(BOOT_FINISHED)}cat /var/tmp/script-runs ${SEED}/meta-data /var/lib/cloud/instance/sem/kiln_user_data; tail -n1 /var/log/cloud-init-output.log`,
    );
    expect(out.split("\r\n")).toEqual([
      "ran",
      `instance-id: ${target.instanceId}`,
      `local-hostname: ip-${target.host.replace(/\./g, "-")}`,
      "kiln-ec2-emulator",
      "user-data part-001 exited with 0",
    ]);
    expect(
      await shell(
        emulator,
        target.instanceId,
        "grep -c datasource_list /etc/cloud/cloud.cfg.d/99-kiln-emulator.cfg; command -v cloud-init || echo none",
      ),
    ).toBe("1\r\nnone");
  });
});

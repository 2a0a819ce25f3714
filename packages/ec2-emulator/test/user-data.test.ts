import { RunInstancesCommand } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID } from "../src/index.js";
import { ec2Client, shell, testEmulator, waitForFile, waitForState } from "./helpers.js";

const BOOT_FINISHED = "/var/lib/cloud/instance/boot-finished";

/** Multipart user data as cloud-init's make-mime writes it: a cloud-config part and two scripts, the second base64-encoded. */
const MULTIPART = [
  'Content-Type: multipart/mixed; boundary="==BOUNDARY=="',
  "MIME-Version: 1.0",
  "",
  "--==BOUNDARY==",
  'Content-Type: text/cloud-config; charset="us-ascii"',
  "",
  "#cloud-config",
  "packages: [nginx]",
  "--==BOUNDARY==",
  'Content-Type: text/x-shellscript; charset="us-ascii"',
  "",
  "#!/bin/sh",
  // Slow on purpose: boot-finished must wait for it.
  "sleep 1",
  "echo one >> /tmp/order",
  "--==BOUNDARY==",
  "Content-Type: text/x-shellscript",
  "Content-Transfer-Encoding: base64",
  "",
  Buffer.from("#!/bin/sh\necho two >> /tmp/order\n").toString("base64"),
  "--==BOUNDARY==--",
  "",
].join("\n");

describe("user data", () => {
  it("runs every shell-script part of multipart user data in order, logs that cloud-config is not applied, then writes boot-finished", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const run = await client.send(
      new RunInstancesCommand({ ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1, UserData: Buffer.from(MULTIPART).toString("base64") }),
    );
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    await waitForState(client, instanceId, "running");
    // Once boot-finished exists, both scripts have run.
    expect(await shell(emulator, instanceId, `${waitForFile(BOOT_FINISHED)}cat /tmp/order`)).toBe("one\r\ntwo");
    const log = await shell(emulator, instanceId, "cat /var/log/cloud-init-output.log");
    expect(log).toContain("part 1 (text/cloud-config) not applied: this image has no cloud-init");
    expect(log).toContain("user-data part-001 exited with 0");
    expect(log).toContain("user-data part-002 exited with 0");
    expect(await shell(emulator, instanceId, `ls ${BOOT_FINISHED}`)).toBe(BOOT_FINISHED);
    expect(JSON.parse(await shell(emulator, instanceId, "cat /var/lib/cloud/data/result.json"))).toEqual({
      v1: { datasource: "DataSourceNoCloud", errors: [] },
    });
  });

  it("lists a failed script in result.json, as cloud-init lists its errors, and still finishes the boot", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const userData = Buffer.from("#!/bin/sh\necho broken >&2\nexit 3\n").toString("base64");
    const run = await client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1, UserData: userData }));
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    await waitForState(client, instanceId, "running");
    const result = await shell(emulator, instanceId, `${waitForFile(BOOT_FINISHED)}cat /var/lib/cloud/data/result.json`);
    expect(JSON.parse(result)).toEqual({ v1: { datasource: "DataSourceNoCloud", errors: ["user-data part-001 exited with 3"] } });
    expect(await shell(emulator, instanceId, "cat /var/log/cloud-init-output.log")).toContain("broken");
  });

  it("writes boot-finished at once when there is no user data", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const run = await client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1 }));
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    await waitForState(client, instanceId, "running");
    expect(await shell(emulator, instanceId, `${waitForFile(BOOT_FINISHED)}cat ${BOOT_FINISHED}`)).toMatch(
      /^[\d.]+ - .+ - v\. kiln-ec2-emulator$/,
    );
  });
});

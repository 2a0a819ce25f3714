import {
  CopyImageCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  type Image,
  type Tag,
} from "@aws-sdk/client-ec2";
import { LABELS, type Artifact } from "@kiln/core";
import { BASE_AMI_ID, BASE_AMI_NAME, CLOUD_INIT_AMI_ID, DEBIAN_OWNER_ID, ensureCloudInitImage } from "@kiln/ec2-emulator";
import Docker from "dockerode";
import { bakeWith, createTestContext, testPluginInit } from "@kiln/test-suite";
import { describe, expect, it } from "vitest";
import ec2, { type Ec2Options } from "../src/index.js";
import { fileEmulator } from "./emulator.js";

const emulator = fileEmulator();
const driver = ec2(testPluginInit("driver", "ec2"));

async function client(region = "us-east-1"): Promise<EC2Client> {
  return new EC2Client({ region, endpoint: (await emulator.current()).endpoint });
}

async function ownImages(region: string): Promise<Image[]> {
  return (await (await client(region)).send(new DescribeImagesCommand({ Owners: ["self"] }))).Images ?? [];
}

const tagsOf = (tags: Tag[] | undefined) => Object.fromEntries((tags ?? []).map((tag) => [tag.Key, tag.Value]));

describe("source", () => {
  it("resolves an AMI filter to the one match, and says so clearly when none or several match", async () => {
    const opts = (await emulator.options()) as Ec2Options;
    await using test = createTestContext();
    const filter = (filters: Record<string, string>, owners: string[], mostRecent?: boolean) => ({
      ...opts,
      source: { ami_filter: { filters, owners, ...(mostRecent === undefined ? {} : { most_recent: mostRecent }) } },
    });
    const found = await driver.resolveSource(test.ctx, filter({ name: "debian-12-amd64-*" }, [DEBIAN_OWNER_ID]));
    expect(found).toMatchObject({ id: BASE_AMI_ID, description: `${BASE_AMI_NAME} (${BASE_AMI_ID})` });

    await expect(driver.resolveSource(test.ctx, filter({ name: "ubuntu-*" }, [DEBIAN_OWNER_ID]))).rejects.toMatchObject({
      code: "E_SOURCE",
      message: "no available AMI with name=ubuntu-* owned by 136693071363 in us-east-1",
    });
    await expect(driver.resolveSource(test.ctx, { ...opts, source: "ami-0000000000000dead" })).rejects.toMatchObject({
      code: "E_SOURCE",
      message: "no AMI ami-0000000000000dead in us-east-1",
    });

    // A second match (an own copy, newer): ambiguous unless most_recent picks the newest.
    const ec2Client = await client();
    const copy = await ec2Client.send(
      new CopyImageCommand({ SourceImageId: BASE_AMI_ID, SourceRegion: "us-east-1", Name: "debian-12-amd64-kiln-copy" }),
    );
    try {
      await expect
        .poll(async () => (await ownImages("us-east-1")).find((image) => image.ImageId === copy.ImageId)?.State, { timeout: 30_000 })
        .toBe("available");
      await expect(driver.resolveSource(test.ctx, filter({ name: "debian-12-amd64-*" }, [DEBIAN_OWNER_ID, "self"]))).rejects.toMatchObject({
        message: expect.stringMatching(/matches 2 AMIs: ami-\S+ \(debian-12-amd64-kiln-copy, .*\); ami-0kiln0debian12/),
        hint: expect.stringContaining("most_recent: true"),
      });
      expect((await driver.resolveSource(test.ctx, filter({ name: "debian-12-amd64-*" }, [DEBIAN_OWNER_ID, "self"], true))).id).toBe(
        copy.ImageId,
      );
    } finally {
      await ec2Client.send(new DeregisterImageCommand({ ImageId: copy.ImageId }));
    }
  });

  it("refuses contradictory options at validation, before anything is launched", async () => {
    const opts = await emulator.options();
    const result = await driver.schema["~standard"].validate({
      ...opts,
      associate_public_ip: false,
      ssh_interface: "public_ip",
      force_delete_snapshot: true,
    });
    expect(result.issues?.map((issue) => issue.message)).toEqual([
      "public_ip needs a public address, but associate_public_ip is false",
      "only applies with force_deregister: true",
    ]);
    const badName = await driver.schema["~standard"].validate({ ...opts, ami_name: "web-{version}" });
    expect(badName.issues?.map((issue) => issue.message)).toEqual([
      "unknown placeholder {version} (use {image}, {timestamp}, {date} or {run_id})",
    ]);
    const badChars = await driver.schema["~standard"].validate({ ...opts, ami_name: "web:{date}" });
    expect(badChars.issues?.[0]?.message).toMatch(/^"web:\d{8}-\d{6}" is not a valid AMI name/);
  });
});

describe("launch", () => {
  it("launches with the instance options an amazon-ebs user sets, and the AMI keeps the volume's size and encryption", async () => {
    const validated = driver.schema["~standard"].validate(
      await emulator.options({
        run_tags: { team: "platform" },
        iam_instance_profile: "kiln-builder",
        subnet_id: "subnet-0kilntest000000",
        associate_public_ip: false,
        launch_block_devices: [{ device_name: "/dev/xvda", volume_size: 12, volume_type: "gp3", encrypted: true }],
      }),
    ) as { value: Ec2Options };
    const opts = validated.value;
    await using test = createTestContext();
    const machine = await driver.launch(test.ctx, await driver.resolveSource(test.ctx, opts), opts);
    const { Reservations } = await (await client()).send(
      new DescribeInstancesCommand({ Filters: [{ Name: `tag:${LABELS.build}`, Values: [test.runId] }] }),
    );
    const instance = Reservations?.[0]?.Instances?.[0];
    expect(tagsOf(instance?.Tags)).toMatchObject({
      team: "platform",
      [LABELS.build]: test.runId,
      Name: expect.stringMatching(new RegExp(`^kiln-${test.runId}-conformance-build-`)),
    });
    expect(instance?.IamInstanceProfile?.Arn).toMatch(/instance-profile\/kiln-builder$/);
    expect(instance?.SubnetId).toBe("subnet-0kilntest000000");
    // No public address: Kiln reached the instance on its private one (ssh_interface defaults to private_ip here).
    expect(instance?.PublicIpAddress).toBeUndefined();
    expect(machine.connection).toMatchObject({ kind: "ssh", host: instance?.PrivateIpAddress, user: "admin" });
    expect((await machine.exec("id -un")).stdout).toBe("root\n");

    const artifact = await driver.capture(test.ctx, machine, { labels: { [LABELS.build]: test.runId }, tags: [] }, opts);
    await machine[Symbol.asyncDispose]();
    try {
      const [image] = (await (await client()).send(new DescribeImagesCommand({ ImageIds: [artifact.id] }))).Images ?? [];
      const [snapshot] =
        (
          await (
            await client()
          ).send(new DescribeSnapshotsCommand({ SnapshotIds: [image?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId as string] }))
        ).Snapshots ?? [];
      expect(snapshot).toMatchObject({ VolumeSize: 12, Encrypted: true });
    } finally {
      await driver.remove(artifact, opts);
    }
    await test.cleanup();
    expect(await emulator.leftovers(test.runId)).toEqual([]);
  });
});

describe("capture", () => {
  it("tags the AMI and its snapshots, encrypts, copies to other regions, grants launch permissions and deprecates", async () => {
    const deprecateAt = "2031-01-01T00:00:00.000Z";
    const opts = await emulator.options({
      ami_name: "kiln-{image}-{timestamp}",
      ami_tags: { team: "platform" },
      snapshot_tags: { backup: "none" },
      encrypt_boot: true,
      kms_key_id: "arn:aws:kms:us-east-1:123456789012:key/kiln-test",
      ami_regions: ["us-west-2"],
      ami_users: ["111122223333"],
      ami_org_arns: ["arn:aws:organizations::123456789012:organization/o-kilntest"],
      deprecate_at: deprecateAt,
    });
    const result = await bakeWith({ driver: ec2, options: opts, commands: ["echo baked > /etc/kiln-baked"] });
    const artifact = result.records[0]?.artifact as Artifact;
    expect(result.ok, JSON.stringify(result.records[0]?.error)).toBe(true);
    try {
      const [primary] = (await (await client()).send(new DescribeImagesCommand({ ImageIds: [artifact.id] }))).Images ?? [];
      expect(primary?.Name).toMatch(/^kiln-conformance-\d{10}$/);
      expect(tagsOf(primary?.Tags)).toMatchObject({
        team: "platform",
        [LABELS.build]: result.runId,
        [LABELS.image]: "conformance",
        [LABELS.key]: result.records[0]?.bakeKey,
      });
      expect(primary?.DeprecationTime).toBe(deprecateAt);
      // Only the encrypted copy is left of the first, unencrypted AMI.
      expect((await ownImages("us-east-1")).map((image) => image.ImageId)).toEqual([artifact.id]);

      const copies = artifact.labels["dev.kiln.ec2.copies"] ?? "";
      expect(copies).toMatch(/^us-west-2=ami-\w+$/);
      const copyId = copies.split("=")[1];
      const [copy] = (await (await client("us-west-2")).send(new DescribeImagesCommand({ ImageIds: [copyId as string] }))).Images ?? [];
      expect(tagsOf(copy?.Tags)).toMatchObject({ team: "platform", [LABELS.build]: result.runId });
      expect(copy?.DeprecationTime).toBe(deprecateAt);

      for (const [region, image] of [
        ["us-east-1", primary],
        ["us-west-2", copy],
      ] as const) {
        const snapshotId = image?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId;
        const [snapshot] =
          (await (await client(region)).send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId as string] }))).Snapshots ?? [];
        expect(snapshot?.Encrypted).toBe(true);
        expect(tagsOf(snapshot?.Tags)).toMatchObject({ backup: "none", [LABELS.build]: result.runId });
        const permissions = await (await client(region)).send(
          new DescribeImageAttributeCommand({ ImageId: image?.ImageId, Attribute: "launchPermission" }),
        );
        expect(permissions.LaunchPermissions).toEqual(
          expect.arrayContaining([
            { UserId: "111122223333" },
            { OrganizationArn: "arn:aws:organizations::123456789012:organization/o-kilntest" },
          ]),
        );
      }
      expect(primary?.BlockDeviceMappings?.[0]?.Ebs?.KmsKeyId).toBe("arn:aws:kms:us-east-1:123456789012:key/kiln-test");
    } finally {
      await driver.remove(artifact, opts as Ec2Options);
    }
    // remove() took the copy in the other region and every snapshot with it.
    expect(await emulator.leftovers(result.runId)).toEqual([]);
  });

  it("a taken AMI name stops the bake before launching; force_deregister replaces that AMI and its snapshots", async () => {
    const current = await emulator.current();
    const opts = await emulator.options({ ami_name: "kiln-fixed-name" });
    const first = await bakeWith({ driver: ec2, options: opts, commands: ["true"] });
    expect(first.ok, JSON.stringify(first.records[0]?.error)).toBe(true);
    const old = first.records[0]?.artifact as Artifact;

    const launchesBefore = current.callCounts().RunInstances ?? 0;
    // Other commands: the same bake key would find the first AMI in the cache and launch nothing.
    const refused = await bakeWith({ driver: ec2, options: opts, commands: ["echo second"] });
    expect(refused.records[0]?.error).toMatchObject({
      message: `AMI name "kiln-fixed-name" is already used by ${old.id} in us-east-1`,
      hint: expect.stringContaining("force_deregister"),
    });
    expect(current.callCounts().RunInstances ?? 0).toBe(launchesBefore);
    expect(await emulator.leftovers(refused.runId)).toEqual([]);

    const replaced = await bakeWith({
      driver: ec2,
      options: { ...opts, force_deregister: true, force_delete_snapshot: true },
      commands: ["echo third"],
    });
    expect(replaced.ok, JSON.stringify(replaced.records[0]?.error)).toBe(true);
    const fresh = replaced.records[0]?.artifact as Artifact;
    try {
      expect((await ownImages("us-east-1")).filter((image) => image.Name === "kiln-fixed-name").map((image) => image.ImageId)).toEqual([
        fresh.id,
      ]);
      expect(await emulator.leftovers(first.runId)).toEqual([]);
    } finally {
      await driver.remove(fresh, opts as Ec2Options);
    }
  });
});

describe("verify", () => {
  it("a boot script that fails fails the bake, naming the user data error and showing its output, and leaves nothing", async () => {
    const result = await bakeWith({
      driver: ec2,
      options: await emulator.options(),
      commands: ["true"],
      verify: { runtime: { boot_script: "echo 'cannot reach the config service' >&2; exit 5" }, checks: [{ command: "true" }] },
    });
    expect(result.ok).toBe(false);
    expect(result.records[0]?.error?.message).toMatch(
      /user data failed: user-data part-001 exited with 5\n[\s\S]*cannot reach the config service/,
    );
    expect(await emulator.leftovers(result.runId)).toEqual([]);
  });

  it("on an AMI with cloud-init, runtime env, files and the scenario's cloud-config all reach the verify instance", async () => {
    await ensureCloudInitImage(new Docker());
    const cloudConfig = [
      "#cloud-config",
      "write_files:",
      "  - path: /etc/app/from-cloud-config",
      "    content: written by cloud-init",
      "runcmd:",
      "  - echo ran > /tmp/runcmd",
    ].join("\n");
    const result = await bakeWith({
      driver: ec2,
      options: await emulator.options({ source: CLOUD_INIT_AMI_ID }),
      commands: ["true"],
      verify: {
        runtime: { env: { STAGE: "staging" }, files: { "/etc/app/runtime.conf": "mode=staging" }, user_data: cloudConfig },
        checks: [
          { file: { path: "/etc/app/from-cloud-config", contains: "written by cloud-init" } },
          { file: { path: "/tmp/runcmd", contains: "ran" } },
          { file: { path: "/etc/app/runtime.conf", contains: "mode=staging" } },
          { command: { run: "printenv STAGE", stdout_contains: "staging" } },
          { command: { run: "cloud-init status", stdout_contains: "status: done" } },
        ],
      },
    });
    const artifact = result.records[0]?.artifact;
    try {
      expect(result.ok, JSON.stringify(result.records[0]?.error)).toBe(true);
      expect(result.events.filter((event) => event.type === "verify.check" && event.ok)).toHaveLength(5);
    } finally {
      if (artifact) await driver.remove(artifact, (await emulator.options()) as Ec2Options);
    }
  }, 300_000);
});

describe("artefacts", () => {
  it("a tag names one AMI: tagging another moves it, as a Docker tag moves", async () => {
    const opts = (await emulator.options()) as Ec2Options;
    const ec2Client = await client();
    const runId = `test-tags-${Date.now()}`;
    const make = async (name: string) => {
      const { ImageId } = await ec2Client.send(
        new CopyImageCommand({
          SourceImageId: BASE_AMI_ID,
          SourceRegion: "us-east-1",
          Name: name,
          TagSpecifications: [{ ResourceType: "image", Tags: [{ Key: LABELS.build, Value: runId }] }],
        }),
      );
      await expect
        .poll(async () => (await ownImages("us-east-1")).find((image) => image.ImageId === ImageId)?.State, { timeout: 30_000 })
        .toBe("available");
      return (await driver.findArtifacts({ ref: ImageId as string }, opts))[0] as Artifact;
    };
    const first = await make(`kiln-tag-a-${runId}`);
    const second = await make(`kiln-tag-b-${runId}`);
    try {
      await driver.tag(first, "acme/web:prod", opts);
      expect((await driver.findArtifacts({ ref: "acme/web:prod" }, opts)).map((artifact) => artifact.id)).toEqual([first.id]);
      await driver.tag(second, "acme/web:prod", opts);
      expect((await driver.findArtifacts({ ref: "acme/web:prod" }, opts)).map((artifact) => artifact.id)).toEqual([second.id]);
      const found = await driver.findArtifacts({ labels: { [LABELS.build]: runId } }, opts);
      expect(found.find((artifact) => artifact.id === first.id)?.tags).toEqual([]);
      expect(found.find((artifact) => artifact.id === second.id)?.tags).toEqual(["acme/web:prod"]);
      await expect(driver.tag(first, `acme/${"x".repeat(130)}:prod`, opts)).rejects.toThrow(/too long for an EC2 tag key/);
    } finally {
      await driver.remove(first, opts);
      await driver.remove(second, opts);
    }
    expect(await emulator.leftovers(runId)).toEqual([]);
  });

  it("finds nothing, rather than failing, for an AMI id that does not exist", async () => {
    const opts = (await emulator.options()) as Ec2Options;
    expect(await driver.findArtifacts({ ref: "ami-0000000000000beef" }, opts)).toEqual([]);
  });
});

import { durationSchema } from "@kiln/core";
import { z } from "@kiln/core";
import { amiNameProblem } from "./names.js";

/** `source_ami_filter` of Packer: the newest (or the only) AMI matching every filter, from these owners. */
const amiFilterSchema = z.strictObject({
  filters: z
    .record(z.string(), z.union([z.string(), z.array(z.string())]))
    .describe('DescribeImages filters, e.g. { name: "debian-12-amd64-*", architecture: "x86_64" }. Values are globs.'),
  owners: z
    .array(z.string())
    .min(1)
    .describe('Accounts the AMI may come from: ids, "self" or "amazon". Required, so a look-alike AMI from a stranger never matches.'),
  most_recent: z.boolean().optional().describe("Take the newest match when several match. Default false: several matches are an error."),
});

const blockDeviceSchema = z.strictObject({
  device_name: z.string().describe('Device, e.g. "/dev/xvda" (the root device) or "/dev/xvdf".'),
  volume_size: z.number().int().positive().optional().describe("Size in GiB."),
  volume_type: z
    .enum(["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"])
    .optional()
    .describe('Volume type. Default: the AMI\'s ("gp2"/"gp3").'),
  iops: z.number().int().positive().optional().describe("Provisioned IOPS (gp3, io1, io2)."),
  delete_on_termination: z.boolean().optional().describe("Delete the volume with the instance. Default true."),
  encrypted: z.boolean().optional().describe("Encrypt the volume."),
  kms_key_id: z.string().optional().describe("KMS key for an encrypted volume. Default: the account's EBS key."),
});

const tagsSchema = z.record(z.string(), z.string());

export const ec2OptionsSchema = z
  .strictObject({
    region: z.string().min(1).describe('AWS region to bake in, e.g. "eu-west-1".'),
    endpoint: z.string().url().optional().describe("EC2 endpoint override, e.g. a local emulator (http://127.0.0.1:4566)."),
    source: z
      .union([
        z.string().regex(/^ami-[0-9a-z]+$/, "expected an AMI id like ami-0abc…"),
        z.strictObject({
          ami_filter: amiFilterSchema.describe(
            "The newest (or the only) AMI matching every filter, from these owners (Packer: source_ami_filter).",
          ),
        }),
      ])
      .optional()
      .describe("AMI to start from: an id (source_ami) or { ami_filter: { filters, owners, most_recent } } (source_ami_filter)."),
    instance_type: z
      .string()
      .regex(/^[a-z0-9-]+\.[a-z0-9-]+$/, 'expected an instance type like "t3.micro"')
      .describe('Instance type of the build instance, e.g. "t3.micro".'),
    subnet_id: z.string().optional().describe("Subnet to launch in. Default: the default VPC's subnet EC2 picks."),
    vpc_id: z.string().optional().describe("VPC of the temporary security group. Default: the default VPC."),
    associate_public_ip: z
      .boolean()
      .optional()
      .describe("Give the instance a public IP address (needs subnet_id). Default: the subnet's setting."),
    ssh_interface: z
      .enum(["public_ip", "private_ip"])
      .optional()
      .describe('Address Kiln connects to. Default "public_ip", "private_ip" when associate_public_ip is false.'),
    ssh_username: z.string().min(1).describe('User to log in as, e.g. "admin" (Debian), "ec2-user" (Amazon Linux), "ubuntu".'),
    exec_user: z
      .string()
      .optional()
      .describe(
        'User provisioners and uploads act as, through sudo. Default "root" (as in a container); set it to ssh_username to run unprivileged.',
      ),
    ssh_port: z.number().int().min(1).max(65535).optional().describe("sshd port. Default 22."),
    ssh_timeout: durationSchema.optional().describe('How long to wait for SSH on a new instance. Default "5m".'),
    ssh_allowed_cidrs: z
      .array(z.string().regex(/^[0-9.]+\/\d{1,2}$/, 'expected a CIDR like "203.0.113.7/32"'))
      .min(1)
      .optional()
      .describe("Who the temporary security group lets in on the SSH port. Default: this machine's address only (/32)."),
    security_group_ids: z.array(z.string()).min(1).optional().describe("Existing security groups to use instead of a temporary one."),
    key_pair: z
      .strictObject({
        name: z.string().min(1).describe("Name of the existing EC2 key pair the instance is launched with (Packer: ssh_keypair_name)."),
        private_key_file: z
          .string()
          .min(1)
          .describe("That key pair's private key file, relative to the bake file (Packer: ssh_private_key_file)."),
      })
      .optional()
      .describe("An existing key pair and its private key file, instead of a temporary ed25519 key pair."),
    iam_instance_profile: z.string().optional().describe("Instance profile name (or ARN) for the build instance."),
    user_data: z.string().optional().describe("User data for the build instance (a script or cloud-config)."),
    user_data_file: z.string().optional().describe("File whose content is the build instance's user data (relative to the bake file)."),
    launch_block_devices: z
      .array(blockDeviceSchema)
      .optional()
      .describe("Volumes of the build instance (launch_block_device_mappings); they become the AMI's."),
    run_tags: tagsSchema.optional().describe("Extra tags on the build and verify instances."),
    ami_name: z
      .string()
      .optional()
      .describe(
        'AMI name; {image}, {timestamp} (Unix seconds), {date} (YYYYMMDD-hhmmss UTC) and {run_id} are replaced. Default "kiln-{image}-{date}".',
      ),
    ami_description: z.string().optional().describe("AMI description."),
    force_deregister: z
      .boolean()
      .optional()
      .describe("Deregister an own AMI that already has this name (else the bake stops before launching). Default false."),
    force_delete_snapshot: z.boolean().optional().describe("With force_deregister: also delete that AMI's snapshots. Default false."),
    ami_tags: tagsSchema.optional().describe("Extra tags on the AMI and its copies (Packer: tags). Kiln's provenance tags are always set."),
    snapshot_tags: tagsSchema.optional().describe("Extra tags on the AMI's snapshots."),
    ami_regions: z
      .array(z.string())
      .optional()
      .describe("Regions to copy the AMI to (tags copied); the artefact's copies are tagged on it."),
    encrypt_boot: z
      .boolean()
      .optional()
      .describe("Encrypt the AMI's snapshots (an encrypted copy replaces the unencrypted AMI). Default false."),
    kms_key_id: z.string().optional().describe("KMS key for encrypt_boot. Default: the account's EBS key (alias/aws/ebs)."),
    region_kms_key_ids: z.record(z.string(), z.string()).optional().describe("KMS key per ami_regions region, for encrypted copies."),
    ami_users: z.array(z.string()).optional().describe("Account ids allowed to launch the AMI."),
    ami_groups: z.array(z.literal("all")).optional().describe('["all"] makes the AMI public.'),
    ami_org_arns: z.array(z.string()).optional().describe("Organization ARNs allowed to launch the AMI."),
    ami_ou_arns: z.array(z.string()).optional().describe("Organizational unit ARNs allowed to launch the AMI."),
    deprecate_at: z
      .string()
      .refine((text) => !Number.isNaN(Date.parse(text)), "expected an ISO 8601 time like 2027-06-01T00:00:00Z")
      .optional()
      .describe("When the AMI (and its copies) is marked deprecated, an ISO 8601 time."),
    stop_before_capture: z
      .boolean()
      .optional()
      .describe("Stop the instance before CreateImage, for a consistent file system (Packer: !disable_stop_instance). Default true."),
    polling: z
      .strictObject({
        delay: durationSchema
          .optional()
          .describe('Longest pause between two checks; the first comes after 500 ms, pauses doubling. Default "2s".'),
        max_attempts: z.number().int().positive().optional().describe("How many checks before a wait gives up. Default 300."),
      })
      .optional()
      .describe(
        'How waiters poll (Packer: aws_polling): the longest pause between checks (default "2s"; the first check after 500 ms, pauses doubling) and how many checks (default 300).',
      ),
    api_retry_deadline: durationSchema
      .optional()
      .describe('How long one API call is retried on throttling, eventual consistency and 5xx answers. Default "2m".'),
  })
  .superRefine((opts, ctx) => {
    // Combinations that cannot work are refused at validation, before anything is launched.
    const problem = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if (opts.user_data !== undefined && opts.user_data_file !== undefined)
      problem("user_data_file", "set user_data or user_data_file, not both");
    if (opts.ssh_interface === "public_ip" && opts.associate_public_ip === false)
      problem("ssh_interface", "public_ip needs a public address, but associate_public_ip is false");
    if (opts.force_delete_snapshot && !opts.force_deregister) problem("force_delete_snapshot", "only applies with force_deregister: true");
    if (opts.kms_key_id !== undefined && !opts.encrypt_boot) problem("kms_key_id", "only applies with encrypt_boot: true");
    if (opts.security_group_ids && opts.ssh_allowed_cidrs)
      problem("ssh_allowed_cidrs", "only applies to the temporary security group, not to security_group_ids");
    const nameProblem = opts.ami_name === undefined ? undefined : amiNameProblem(opts.ami_name);
    if (nameProblem) problem("ami_name", nameProblem);
  });

export type Ec2Options = z.infer<typeof ec2OptionsSchema>;

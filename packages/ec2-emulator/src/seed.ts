import { ANY_REGION, type Ec2State } from "./state.js";

/** Debian's AWS account, which owns the official Debian AMIs — so filters copied from real bake files match. */
export const DEBIAN_OWNER_ID = "136693071363";
export const BASE_AMI_ID = "ami-0kiln0debian12";
export const BASE_AMI_NAME = "debian-12-amd64-20261101";
/** The same Debian with cloud-init installed: user data goes through cloud-init's NoCloud seed (`#cloud-config` works). */
export const CLOUD_INIT_AMI_ID = "ami-0kiln0debian12ci";
/** Not matched by `debian-12-amd64-*`, so filters meant for the base AMI keep finding exactly that one. */
export const CLOUD_INIT_AMI_NAME = "debian-12-cloudinit-amd64-20261101";

/** The Docker images behind the seeded AMIs. */
export interface SeedImages {
  base: string;
  cloudInit: string;
}

/** The "public" AMIs every emulator starts with, backed by local Docker images with sshd; every region sees them, same ids. */
export function seedImages(state: Ec2State, images: SeedImages): void {
  seed(state, BASE_AMI_ID, BASE_AMI_NAME, "Debian 12 (20261101)", images.base);
  seed(state, CLOUD_INIT_AMI_ID, CLOUD_INIT_AMI_NAME, "Debian 12 with cloud-init (20261101)", images.cloudInit);
}

function seed(state: Ec2State, imageId: string, name: string, description: string, dockerImage: string): void {
  state.images.set(imageId, {
    imageId,
    region: ANY_REGION,
    name,
    description,
    ownerId: DEBIAN_OWNER_ID,
    state: "available",
    isPublic: true,
    launchPermissions: { userIds: [], organizationArns: [], organizationalUnitArns: [] },
    creationDate: new Date("2026-11-01T12:00:00.000Z"),
    deprecationTime: undefined,
    architecture: "x86_64",
    dockerImage,
    // The public snapshot belongs to Debian's account, so it is not one of the caller's snapshots (nor a leak).
    snapshotId: imageId.replace(/^ami-/, "snap-"),
    rootVolume: { volumeSize: 8, volumeType: "gp2", encrypted: false, kmsKeyId: undefined },
    tags: {},
  });
}

/**
 * EC2 driver options for an image baked from the seeded Debian AMI of the emulator at `endpoint`: logged in as `admin`, who
 * becomes root with sudo, polling briefly (the emulator's transitions are quick). For tests of drivers and provisioners.
 */
export function seededImageOptions(endpoint: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    region: "us-east-1",
    endpoint,
    source: BASE_AMI_ID,
    instance_type: "t3.micro",
    ssh_username: "admin",
    ssh_timeout: "60s",
    polling: { delay: "200ms" },
    ...extra,
  };
}

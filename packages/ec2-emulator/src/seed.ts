import { ANY_REGION, type Ec2State } from "./state.js";

/** Debian's AWS account, which owns the official Debian AMIs — so filters copied from real bake files match. */
export const DEBIAN_OWNER_ID = "136693071363";
export const BASE_AMI_ID = "ami-0kiln0debian12";
export const BASE_AMI_NAME = "debian-12-amd64-20261101";

/** The one "public" AMI every emulator starts with, backed by a local Docker image with sshd; every region sees it, same id. */
export function seedBaseImage(state: Ec2State, dockerImage: string): void {
  state.images.set(BASE_AMI_ID, {
    imageId: BASE_AMI_ID,
    region: ANY_REGION,
    name: BASE_AMI_NAME,
    description: "Debian 12 (20261101)",
    ownerId: DEBIAN_OWNER_ID,
    state: "available",
    isPublic: true,
    launchPermissions: { userIds: [], organizationArns: [], organizationalUnitArns: [] },
    creationDate: new Date("2026-11-01T12:00:00.000Z"),
    deprecationTime: undefined,
    architecture: "x86_64",
    dockerImage,
    // The public snapshot belongs to Debian's account, so it is not one of the caller's snapshots (nor a leak).
    snapshotId: "snap-0kiln0debian12",
    rootVolume: { volumeSize: 8, volumeType: "gp2", encrypted: false, kmsKeyId: undefined },
    tags: {},
  });
}

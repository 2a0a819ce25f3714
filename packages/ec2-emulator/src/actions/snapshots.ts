import { Ec2Error, notFound } from "../errors.js";
import { matchesFilters } from "../query.js";
import { ACCOUNT_ID, type SnapshotRecord, tagSet } from "../state.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

/** Every recorded snapshot is the caller's (the seeded AMI's snapshot is Debian's and never recorded). */
function snapshotFilterValues(snapshot: SnapshotRecord, name: string): string[] | undefined {
  const values: Record<string, string[]> = {
    "snapshot-id": [snapshot.snapshotId],
    status: [snapshot.state],
    "owner-id": [ACCOUNT_ID],
    description: [snapshot.description],
    "volume-size": [String(snapshot.volumeSize)],
    encrypted: [String(snapshot.encrypted)],
  };
  return values[name];
}

/** Only the request region's snapshots: an id from another region answers InvalidSnapshot.NotFound, as on EC2. */
export const DescribeSnapshots: ActionHandler = (ctx, params) => {
  const ids = params.list("SnapshotId");
  for (const id of ids) if (!ctx.state.snapshot(id, ctx.region)) throw notFound("snapshot", id);
  const owners = params.list("Owner");
  const ownerMatches = owners.length === 0 || owners.some((owner) => owner === "self" || owner === ACCOUNT_ID);
  const filters = params.filters();
  const selected = ctx.state
    .snapshotsIn(ctx.region)
    .filter(
      (s) =>
        ownerMatches &&
        (ids.length === 0 || ids.includes(s.snapshotId)) &&
        matchesFilters(filters, s.tags, (name) => snapshotFilterValues(s, name)),
    );
  return fields({
    snapshotSet: set(
      selected.map((s) => ({
        snapshotId: s.snapshotId,
        volumeId: "vol-ffffffff",
        status: s.state,
        startTime: s.startTime.toISOString(),
        progress: s.state === "completed" ? "100%" : "0%",
        ownerId: ACCOUNT_ID,
        volumeSize: s.volumeSize,
        description: s.description,
        encrypted: s.encrypted,
        kmsKeyId: s.kmsKeyId,
        storageTier: "standard",
        tagSet: set(tagSet(s.tags)),
      })),
    ),
  });
};

export const DeleteSnapshot: ActionHandler = (ctx, params) => {
  const snapshotId = params.require("SnapshotId");
  if (!ctx.state.snapshot(snapshotId, ctx.region)) throw notFound("snapshot", snapshotId);
  for (const image of ctx.state.images.values()) {
    if (image.snapshotId === snapshotId)
      throw new Ec2Error("InvalidSnapshot.InUse", `The snapshot ${snapshotId} is currently in use by ${image.imageId}`);
  }
  ctx.state.snapshots.delete(snapshotId);
  return fields({ return: true });
};

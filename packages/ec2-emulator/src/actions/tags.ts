import { Ec2Error, missingParameter } from "../errors.js";
import { matchesFilters } from "../query.js";
import { checkTagCount } from "../tag-limits.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

/** All or nothing, as on EC2: an unknown id or a resource that would pass 50 tags fails the call before any tag is written. */
export const CreateTags: ActionHandler = (ctx, params) => {
  const ids = params.list("ResourceId");
  if (ids.length === 0) throw missingParameter("ResourceId");
  const tags = params.tags("Tag");
  const resources = ids.map((id) => {
    const resource = ctx.state.taggable(id, ctx.region);
    // EC2 names the malformed/unknown id per resource kind; one generic code keeps this small and is what the SDK surfaces.
    if (!resource) throw new Ec2Error("InvalidID", `The ID '${id}' is not valid`);
    checkTagCount({ ...resource.tags, ...tags });
    return resource;
  });
  for (const resource of resources) Object.assign(resource.tags, tags);
  return fields({ return: true });
};

export const DeleteTags: ActionHandler = (ctx, params) => {
  const ids = params.list("ResourceId");
  if (ids.length === 0) throw missingParameter("ResourceId");
  const keys = params.indices("Tag").map((index) => params.get(`Tag.${index}.Key`) ?? "");
  for (const id of ids) {
    const resource = ctx.state.taggable(id, ctx.region);
    if (!resource) continue;
    for (const key of keys) delete resource.tags[key];
  }
  return fields({ return: true });
};

/** Tags of every resource the request's region sees (images and snapshots of other regions are left out). */
export const DescribeTags: ActionHandler = (ctx, params) => {
  const filters = params.filters();
  const ids = [
    ...ctx.state.instances.keys(),
    ...ctx.state.securityGroups.keys(),
    ...ctx.state.imagesIn(ctx.region).map((image) => image.imageId),
    ...ctx.state.snapshotsIn(ctx.region).map((snapshot) => snapshot.snapshotId),
    ...[...ctx.state.keyPairs.values()].map((k) => k.keyPairId),
  ];
  const items: Array<{ resourceId: string; resourceType: string; key: string; value: string }> = [];
  for (const resourceId of ids) {
    const resource = ctx.state.taggable(resourceId, ctx.region);
    if (!resource) continue;
    for (const [key, value] of Object.entries(resource.tags)) {
      const item = { resourceId, resourceType: resource.type, key, value };
      const match = matchesFilters(
        filters,
        {},
        (name) => ({ "resource-id": [resourceId], "resource-type": [resource.type], key: [key], value: [value] })[name],
      );
      if (match) items.push(item);
    }
  }
  return fields({ tagSet: set(items) });
};

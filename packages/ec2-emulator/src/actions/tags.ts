import { Ec2Error, missingParameter } from "../errors.js";
import { matchesFilters } from "../query.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

export const CreateTags: ActionHandler = (ctx, params) => {
  const ids = params.list("ResourceId");
  if (ids.length === 0) throw missingParameter("ResourceId");
  const tags = params.tags("Tag");
  const resources = ids.map((id) => {
    const resource = ctx.state.taggable(id);
    // EC2 names the malformed/unknown id per resource kind; one generic code keeps this small and is what the SDK surfaces.
    if (!resource) throw new Ec2Error("InvalidID", `The ID '${id}' is not valid`);
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
    const resource = ctx.state.taggable(id);
    if (!resource) continue;
    for (const key of keys) delete resource.tags[key];
  }
  return fields({ return: true });
};

export const DescribeTags: ActionHandler = (ctx, params) => {
  const filters = params.filters();
  const ids = [...ctx.state.instances.keys(), ...ctx.state.securityGroups.keys(), ...ctx.state.images.keys(), ...ctx.state.snapshots.keys(), ...[...ctx.state.keyPairs.values()].map((k) => k.keyPairId)];
  const items: Array<{ resourceId: string; resourceType: string; key: string; value: string }> = [];
  for (const resourceId of ids) {
    const resource = ctx.state.taggable(resourceId);
    if (!resource) continue;
    for (const [key, value] of Object.entries(resource.tags)) {
      const item = { resourceId, resourceType: resource.type, key, value };
      const match = matchesFilters(filters, {}, (name) => ({ "resource-id": [resourceId], "resource-type": [resource.type], key: [key], value: [value] })[name]);
      if (match) items.push(item);
    }
  }
  return fields({ tagSet: set(items) });
};

import type { Tag, TagSpecification } from "@aws-sdk/client-ec2";

/** EC2 caps a tag value at 256 characters; longer labels (e.g. `dev.kiln.inputs` of a long image) go in numbered parts. */
const MAX_VALUE = 256;
const PART = /^(.+)#(\d+)$/;

/** Tag keys that name the artefact (like Docker tags: moved, not copied, when a reference is re-pointed). */
export const REF_PREFIX = "kiln:ref:";
/** Tag on the primary AMI listing its copies in other regions: `us-west-2=ami-…,eu-west-1=ami-…`. */
export const COPIES_TAG = "dev.kiln.ec2.copies";

/** Labels as EC2 tags: a value longer than 256 characters becomes `key`, `key#2`, `key#3`… */
export function toTags(labels: Record<string, string>): Tag[] {
  const tags: Tag[] = [];
  for (const [key, value] of Object.entries(labels)) {
    if (value.length <= MAX_VALUE) {
      tags.push({ Key: key, Value: value });
      continue;
    }
    for (let start = 0, part = 1; start < value.length; start += MAX_VALUE, part++) {
      tags.push({ Key: part === 1 ? key : `${key}#${part}`, Value: value.slice(start, start + MAX_VALUE) });
    }
  }
  return tags;
}

/** EC2 tags back to labels (parts joined), without the reference tags. */
export function fromTags(tags: Tag[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  const parts = new Map<string, Array<[number, string]>>();
  for (const { Key: key = "", Value: value = "" } of tags ?? []) {
    if (key.startsWith(REF_PREFIX)) continue;
    const part = PART.exec(key);
    if (part?.[1] && part[2]) parts.set(part[1], [...(parts.get(part[1]) ?? []), [Number(part[2]), value]]);
    else labels[key] = value;
  }
  for (const [key, rest] of parts) {
    if (!(key in labels)) continue;
    labels[key] += rest
      .sort(([a], [b]) => a - b)
      .map(([, value]) => value)
      .join("");
  }
  return labels;
}

/** The artefact references (`acme/web:prod`) among an AMI's tags. */
export function refsOf(tags: Tag[] | undefined): string[] {
  return (tags ?? []).flatMap(({ Key: key }) => (key?.startsWith(REF_PREFIX) ? [key.slice(REF_PREFIX.length)] : []));
}

export function tagSpecs(...specs: Array<[TagSpecification["ResourceType"], Record<string, string>]>): TagSpecification[] {
  return specs
    .filter(([, labels]) => Object.keys(labels).length > 0)
    .map(([type, labels]) => ({ ResourceType: type, Tags: toTags(labels) }));
}

import {
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeImagesCommand,
  type DescribeImagesCommandInput,
  type Filter,
  type Image,
} from "@aws-sdk/client-ec2";
import { KilnError, LABELS, type Artifact, type ArtifactQuery } from "@kiln/core";
import type { Ec2Api } from "./api.js";
import { removeAmi } from "./capture.js";
import { COPIES_TAG, fromTags, REF_PREFIX, refsOf } from "./tags.js";

/** EC2 caps tag keys at 128 characters. */
const MAX_KEY = 128;

/** Own, available AMIs matching the query: by provenance tags, or by id or reference (`acme/web:prod`). */
export async function findAmis(api: Ec2Api, query: ArtifactQuery): Promise<Artifact[]> {
  const filters: Filter[] = Object.entries(query.labels ?? {}).map(([key, value]) =>
    value === undefined ? { Name: "tag-key", Values: [key] } : { Name: `tag:${key}`, Values: [value] },
  );
  let images: Image[];
  if (query.ref?.startsWith("ami-")) {
    images = await describe(api, { ImageIds: [query.ref], Filters: filters }).catch((error) =>
      /InvalidAMIID/.test(String((error as Error).message)) ? [] : Promise.reject(error),
    );
  } else {
    if (query.ref !== undefined) filters.push({ Name: "tag-key", Values: [refKey(query.ref)] });
    images = await describe(api, { Owners: ["self"], Filters: filters });
  }
  return images.filter((image) => image.State === "available").map(toArtifact);
}

/** Points a reference at the artefact, moving it off any other AMI (references name one artefact, like Docker tags). */
export async function tagAmi(api: Ec2Api, artifact: Artifact, ref: string): Promise<void> {
  const key = refKey(ref);
  const holders = (await describe(api, { Owners: ["self"], Filters: [{ Name: "tag-key", Values: [key] }] }))
    .map((image) => image.ImageId ?? "")
    .filter((id) => id && id !== artifact.id);
  await api.call(
    "CreateTags",
    (client) => client.send(new CreateTagsCommand({ Resources: [artifact.id], Tags: [{ Key: key, Value: "" }] })),
    { code: "E_CAPTURE" },
  );
  if (holders.length > 0)
    await api.call("DeleteTags", (client) => client.send(new DeleteTagsCommand({ Resources: holders, Tags: [{ Key: key }] })), {
      code: "E_CAPTURE",
    });
}

/** Deregisters the AMI and its copies in other regions, and deletes their snapshots. */
export async function removeArtifact(api: Ec2Api, artifact: Artifact): Promise<void> {
  const copies = (artifact.labels[COPIES_TAG] ?? "").split(",").filter(Boolean);
  for (const entry of copies) {
    const [region, imageId] = entry.split("=") as [string, string];
    await removeAmi(api, { region, imageId }, true);
  }
  await removeAmi(api, { region: api.region, imageId: artifact.id }, true);
}

function refKey(ref: string): string {
  const key = `${REF_PREFIX}${ref}`;
  if (key.length > MAX_KEY)
    throw new KilnError("E_CONFIG", `tag "${ref}" is too long for an EC2 tag key (${key.length} > ${MAX_KEY} characters)`, {
      hint: "use a shorter tag",
    });
  return key;
}

async function describe(api: Ec2Api, input: DescribeImagesCommandInput): Promise<Image[]> {
  const result = await api.call("DescribeImages", (client) => client.send(new DescribeImagesCommand(input)), { code: "E_CONFIG" });
  return result.Images ?? [];
}

function toArtifact(image: Image): Artifact {
  const labels = fromTags(image.Tags);
  return {
    id: image.ImageId ?? "",
    driver: "ec2",
    image: labels[LABELS.image] ?? "",
    tags: refsOf(image.Tags),
    labels,
    ...(image.CreationDate ? { created: image.CreationDate } : {}),
  };
}

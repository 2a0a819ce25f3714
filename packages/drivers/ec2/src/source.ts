import { DescribeImagesCommand, type DescribeImagesCommandInput, type Image } from "@aws-sdk/client-ec2";
import { KilnError, type BakeContext, type SourceRef } from "@kiln/core";
import type { Ec2Api } from "./api.js";
import type { Ec2Options } from "./options.js";

/** Resolves the source (an AMI id, an AMI filter, or the parent artefact) to one available AMI id: it feeds the bake key. */
export async function resolveSourceAmi(api: Ec2Api, ctx: BakeContext, opts: Ec2Options): Promise<SourceRef> {
  if (ctx.parent) return { id: ctx.parent.id, digest: ctx.parent.id, description: `${ctx.parent.image} (${ctx.parent.id})` };
  const source = opts.source;
  if (source === undefined)
    throw new KilnError("E_CONFIG", `image "${ctx.image}" has no source`, {
      hint: "set source: ami-… or source: { ami_filter: … }, or from:",
    });
  if (typeof source === "string") {
    const images = await describe(api, ctx, { ImageIds: [source] }, `source AMI ${source}`);
    const image = images[0];
    if (!image) throw noMatch(`AMI ${source}`, opts.region);
    return toSource(image, source);
  }
  const { filters, owners, most_recent: mostRecent } = source.ami_filter;
  const input = {
    Owners: owners,
    Filters: Object.entries(filters).map(([Name, value]) => ({ Name, Values: Array.isArray(value) ? value : [value] })),
  };
  const what = `${Object.entries(filters)
    .map(([name, value]) => `${name}=${value}`)
    .join(", ")} owned by ${owners.join(" or ")}`;
  const matches = (await describe(api, ctx, input, "source AMI filter")).filter((image) => image.State === "available");
  if (matches.length === 0) throw noMatch(`available AMI with ${what}`, opts.region);
  const newestFirst = matches.sort((a, b) => (b.CreationDate ?? "").localeCompare(a.CreationDate ?? ""));
  if (newestFirst.length > 1 && !mostRecent) {
    const listed = newestFirst.slice(0, 5).map((image) => `${image.ImageId} (${image.Name}, ${image.CreationDate})`);
    throw new KilnError(
      "E_SOURCE",
      `source.ami_filter matches ${newestFirst.length} AMIs: ${listed.join("; ")}${newestFirst.length > 5 ? "; …" : ""}`,
      {
        hint: "narrow the filters, or set most_recent: true to take the newest",
      },
    );
  }
  return toSource(newestFirst[0] as Image, `ami_filter ${what}`);
}

async function describe(api: Ec2Api, ctx: BakeContext, input: DescribeImagesCommandInput, what: string): Promise<Image[]> {
  try {
    const result = await api.call("DescribeImages", (client, http) => client.send(new DescribeImagesCommand(input), http), {
      code: "E_SOURCE",
      signal: ctx.signal,
    });
    return result.Images ?? [];
  } catch (error) {
    // An unknown id is an answer, not a failure: the caller says what was not found.
    if (/InvalidAMIID\.(NotFound|Malformed)/.test(String((error as Error).message))) return [];
    throw new KilnError("E_SOURCE", `cannot look up the ${what}: ${(error as Error).message}`, {
      ...(error instanceof KilnError && error.hint ? { hint: error.hint } : {}),
      cause: error,
    });
  }
}

function toSource(image: Image, description: string): SourceRef {
  const id = image.ImageId ?? "";
  return {
    id,
    // An AMI id never changes content; the creation date tells a rebuilt image apart from its predecessor in provenance.
    digest: id,
    description: description.startsWith("ami-") ? `${id} (${image.Name ?? "unnamed"})` : `${image.Name ?? id} (${id})`,
    details: { name: image.Name ?? "", owner: image.OwnerId ?? "", created: image.CreationDate ?? "" },
  };
}

function noMatch(what: string, region: string): KilnError {
  return new KilnError("E_SOURCE", `no ${what} in ${region}`, {
    hint: "check the region, the owners and the filters (aws ec2 describe-images with the same filters)",
  });
}

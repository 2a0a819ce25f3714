import { Ec2Error } from "../errors.js";
import { matchesFilters } from "../query.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

/** Regions enabled for every account. */
const DEFAULT_REGIONS = [
  "ap-northeast-1",
  "ap-northeast-2",
  "ap-northeast-3",
  "ap-south-1",
  "ap-southeast-1",
  "ap-southeast-2",
  "ca-central-1",
  "eu-central-1",
  "eu-north-1",
  "eu-west-1",
  "eu-west-2",
  "eu-west-3",
  "sa-east-1",
  "us-east-1",
  "us-east-2",
  "us-west-1",
  "us-west-2",
];
/** Opt-in regions the emulated account has not opted in to: listed only with AllRegions=true. */
const OPT_IN_REGIONS = [
  "af-south-1",
  "ap-east-1",
  "ap-south-2",
  "ap-southeast-3",
  "ap-southeast-4",
  "eu-central-2",
  "eu-south-1",
  "eu-south-2",
  "il-central-1",
  "me-central-1",
  "me-south-1",
];

interface Region {
  regionName: string;
  regionEndpoint: string;
  optInStatus: string;
}

const ALL: Region[] = [
  ...DEFAULT_REGIONS.map((name) => ({ regionName: name, regionEndpoint: `ec2.${name}.amazonaws.com`, optInStatus: "opt-in-not-required" })),
  ...OPT_IN_REGIONS.map((name) => ({ regionName: name, regionEndpoint: `ec2.${name}.amazonaws.com`, optInStatus: "not-opted-in" })),
].sort((a, b) => (a.regionName < b.regionName ? -1 : 1));

/**
 * EC2's public regions (what clients such as Packer validate region names against). The list is informational: one emulator
 * endpoint serves every region, whatever its name, and the endpoints listed are EC2's, not the emulator's.
 */
export const DescribeRegions: ActionHandler = (_ctx, params) => {
  const names = params.list("RegionName");
  for (const name of names)
    if (!ALL.some((r) => r.regionName === name)) throw new Ec2Error("InvalidParameterValue", `Invalid region: ${name}`);
  const allRegions = params.bool("AllRegions") ?? false;
  const filters = params.filters();
  const selected = ALL.filter(
    (r) =>
      (allRegions || names.length > 0 || r.optInStatus !== "not-opted-in") &&
      (names.length === 0 || names.includes(r.regionName)) &&
      matchesFilters(
        filters,
        {},
        (name) => ({ "region-name": [r.regionName], endpoint: [r.regionEndpoint], "opt-in-status": [r.optInStatus] })[name],
      ),
  );
  return fields({
    regionInfo: set(selected.map((r) => ({ regionName: r.regionName, regionEndpoint: r.regionEndpoint, optInStatus: r.optInStatus }))),
  });
};

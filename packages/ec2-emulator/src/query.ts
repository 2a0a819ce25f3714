import { Ec2Error, missingParameter } from "./errors.js";
import { checkTag, checkTagCount } from "./tag-limits.js";

/** A Query API request's parameters (`Action`, `Filter.1.Name`, …) as sent, after form/URL decoding. */
export class QueryParams {
  constructor(private readonly params: Map<string, string>) {}

  static parse(body: string): QueryParams {
    return new QueryParams(new Map(new URLSearchParams(body)));
  }

  get(name: string): string | undefined {
    return this.params.get(name);
  }

  /**
   * An optional parameter: undefined when absent or empty. EC2 takes an empty optional parameter as not given; some clients send
   * them (Packer: `SubnetId=`, `IamInstanceProfile.Name=`, `VpcId=` when none is configured).
   */
  optional(name: string): string | undefined {
    const value = this.params.get(name);
    return value === "" ? undefined : value;
  }

  require(name: string): string {
    const value = this.params.get(name);
    if (value === undefined || value === "") throw missingParameter(name);
    return value;
  }

  /** `true`/`false` as the SDK sends booleans; undefined when absent. */
  bool(name: string): boolean | undefined {
    const value = this.params.get(name);
    if (value === undefined) return undefined;
    if (value !== "true" && value !== "false")
      throw new Ec2Error("InvalidParameterValue", `Value (${value}) for parameter ${name} is invalid. Expected: 'true' or 'false'`);
    return value === "true";
  }

  /** Every parameter but the named ones, in a stable order: what makes two requests "the same" for ClientToken idempotency. */
  fingerprint(ignored: string[]): string {
    return JSON.stringify([...this.params].filter(([name]) => !ignored.includes(name)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  int(name: string): number | undefined {
    const value = this.params.get(name);
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (!Number.isInteger(parsed)) throw new Ec2Error("InvalidParameterValue", `Value (${value}) for parameter ${name} is invalid`);
    return parsed;
  }

  /** `Prefix.1`, `Prefix.2`, … in index order (indices need not be contiguous, as with the real API). */
  list(prefix: string): string[] {
    return this.indices(prefix).map((index) => this.params.get(`${prefix}.${index}`) ?? "");
  }

  /** The indices N for which some `Prefix.N` or `Prefix.N.…` parameter exists, sorted. */
  indices(prefix: string): number[] {
    const found = new Set<number>();
    const pattern = new RegExp(`^${prefix.replace(/\./g, "\\.")}\\.(\\d+)(?:\\.|$)`);
    for (const key of this.params.keys()) {
      const match = pattern.exec(key);
      if (match?.[1]) found.add(Number(match[1]));
    }
    return [...found].sort((a, b) => a - b);
  }

  /** `Filter.N.Name` / `Filter.N.Value.M`. */
  filters(): Filter[] {
    return this.indices("Filter").map((index) => ({
      name: this.params.get(`Filter.${index}.Name`) ?? "",
      values: this.list(`Filter.${index}.Value`),
    }));
  }

  /** Tags from `TagSpecification.N` whose ResourceType is `resourceType` (other resource types are ignored), within EC2's limits. */
  tagSpecifications(resourceType: string): Record<string, string> {
    const tags: Record<string, string> = {};
    for (const index of this.indices("TagSpecification")) {
      const prefix = `TagSpecification.${index}`;
      if (this.params.get(`${prefix}.ResourceType`) !== resourceType) continue;
      Object.assign(tags, this.tags(`${prefix}.Tag`));
    }
    checkTagCount(tags);
    return tags;
  }

  /** `Prefix.N.Key` / `Prefix.N.Value` pairs; a key or value EC2 would refuse answers InvalidParameterValue. */
  tags(prefix: string): Record<string, string> {
    const tags: Record<string, string> = {};
    for (const index of this.indices(prefix)) {
      const key = this.params.get(`${prefix}.${index}.Key`);
      if (key === undefined) continue;
      const value = this.params.get(`${prefix}.${index}.Value`) ?? "";
      checkTag(key, value);
      tags[key] = value;
    }
    return tags;
  }
}

export interface Filter {
  name: string;
  values: string[];
}

/** EC2 filter values are globs: `*` any run of characters, `?` one character. */
function globMatches(pattern: string, value: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${regex}$`, "s").test(value);
}

/**
 * True when every filter matches (filters AND together, values within one filter OR together, as in EC2). `valuesOf` gives a
 * resource's values for a filter name; `tag:Key` and `tag-key` are handled here from `tags`. Unknown filter names match nothing.
 */
export function matchesFilters(filters: Filter[], tags: Record<string, string>, valuesOf: (name: string) => string[] | undefined): boolean {
  return filters.every((filter) => {
    let values: string[] | undefined;
    if (filter.name.startsWith("tag:")) {
      const tag = tags[filter.name.slice(4)];
      values = tag === undefined ? [] : [tag];
    } else if (filter.name === "tag-key") values = Object.keys(tags);
    else if (filter.name === "tag-value") values = Object.values(tags);
    else values = valuesOf(filter.name);
    if (values === undefined) throw new Ec2Error("InvalidParameterValue", `The filter '${filter.name}' is invalid`);
    return values.some((value) => filter.values.some((pattern) => globMatches(pattern, value)));
  });
}

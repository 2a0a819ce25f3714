import { describe, expect, it } from "vitest";
import { matchesPattern } from "../verify/pattern.js";
import { Diagnostics } from "./diagnostics.js";
import { noPositions } from "./positions.js";
import { dependencyOrder } from "./references.js";
import type { BakeFile } from "./schema.js";
import { expandSteps } from "./steps.js";

const diagnostics = () => new Diagnostics("kiln.yaml", noPositions);

describe("walks over what a bake file describes never recurse on its data", () => {
  it("orders a from: chain of 10 000 images without overflowing the stack, and refuses it as too long", () => {
    const images = Object.fromEntries(
      Array.from({ length: 10_000 }, (_, i) => [`i${i}`, { driver: "docker", ...(i === 0 ? { source: "s" } : { from: `i${i - 1}` }) }]),
    );
    const found = diagnostics();
    const order = dependencyOrder({ images, steps: {}, variables: {} } as unknown as BakeFile, found);
    expect(order).toHaveLength(10_000);
    expect(order.indexOf("i0")).toBeLessThan(order.indexOf("i1"));
    expect(found.items[0]?.message).toMatch(/^the from: chain above "i\d+" is more than 100 images long$/);
  });

  it("reports a from: cycle of 10 000 images once", () => {
    const images = Object.fromEntries(
      Array.from({ length: 10_000 }, (_, i) => [`i${i}`, { driver: "docker", from: `i${(i + 9_999) % 10_000}` }]),
    );
    const found = diagnostics();
    dependencyOrder({ images, steps: {}, variables: {} } as unknown as BakeFile, found);
    expect(found.items.some((item) => item.message.startsWith("cycle in from:") || item.message.includes("more than 100"))).toBe(true);
  });

  it("expands use: lists nested 10 000 deep without overflowing the stack, refusing them beyond 64 levels", () => {
    const lists: Record<string, Record<string, unknown>[]> = Object.fromEntries(
      Array.from({ length: 10_000 }, (_, i) => [`l${i}`, [{ use: `l${i + 1}` }]]),
    );
    lists.l10000 = [{ shell: { inline: ["true"] } }];
    const found = diagnostics();
    expect(expandSteps([{ use: "l0" }], ["images", "web", "provision"], lists, found)).toEqual([]);
    expect(found.items.map((item) => item.message)).toEqual(["use: lists nest more than 64 deep"]);
  });

  it("stops a list used twice at every level (2^40 steps) at 1000", () => {
    const lists: Record<string, Record<string, unknown>[]> = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`d${i}`, [{ use: `d${i + 1}` }, { use: `d${i + 1}` }]]),
    );
    lists.d40 = [{ shell: { inline: ["true"] } }];
    const found = diagnostics();
    expect(expandSteps([{ use: "d0" }], ["images", "web", "provision"], lists, found)).toHaveLength(1000);
    expect(found.items.map((item) => item.message)).toEqual(["the steps expand to more than 1000 (through use:)"]);
  });
});

describe("verify patterns", () => {
  it("match a pattern that backtracks catastrophically in JavaScript (RE2: linear time) on 100 000 characters", () => {
    expect(matchesPattern("^(a+)+$", `${"a".repeat(100_000)}!`)).toBe(false);
    expect(matchesPattern("^ok (\\d+)$", "first\nok 42\nlast")).toBe(true);
  });
});

import { templateReferences } from "../variables.js";
import type { Diagnostics } from "./diagnostics.js";
import type { PathSegment } from "./positions.js";
import type { BakeFile } from "./schema.js";

/** Every `{{ name }}` must name a declared variable; sensitive ones may not end up in tags or labels. */
export function checkReferences(bakeFile: BakeFile, diagnostics: Diagnostics): void {
  const declared = bakeFile.variables;
  const sections: [PathSegment[], unknown][] = [
    [["steps"], bakeFile.steps],
    ...Object.entries(bakeFile.images).map(([name, image]): [PathSegment[], unknown] => [["images", name], image]),
  ];
  for (const [at, section] of sections) {
    walkStrings(section, at, (text, path) => {
      for (const name of templateReferences(text)) {
        if (!(name in declared)) {
          diagnostics.add(path, `undefined variable "${name}"`, { hint: `declare it under variables: ${name}: { default: … }` });
        } else if (declared[name]?.sensitive && (path[2] === "tags" || path[2] === "labels")) {
          diagnostics.add(path, `sensitive variable "${name}" would be written into the image's ${path[2]}`, {
            hint: "tags and labels are public: use a non-sensitive variable",
          });
        }
      }
    });
  }
}

function walkStrings(value: unknown, path: PathSegment[], visit: (text: string, path: PathSegment[]) => void): void {
  if (typeof value === "string") visit(value, path);
  else if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) walkStrings(item, [...path, index], visit);
  } else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) walkStrings(item, [...path, key], visit);
  }
}

/** Orders images so parents come first; reports missing parents and cycles. */
export function dependencyOrder(bakeFile: BakeFile, diagnostics: Diagnostics): string[] {
  const images = bakeFile.images;
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, chain: string[]): void => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting") {
      const cycle = [...chain.slice(chain.indexOf(name)), name];
      diagnostics.add(["images", name, "from"], `cycle in from: ${cycle.join(" → ")}`, {
        hint: "an image cannot be built on itself, directly or through others",
      });
      return;
    }
    state.set(name, "visiting");
    const parent = images[name]?.from;
    if (parent !== undefined) {
      if (!(parent in images)) {
        diagnostics.add(["images", name, "from"], `image "${parent}" is not defined`, {
          hint: `define it under images:, or use one of: ${Object.keys(images).join(", ")}`,
        });
      } else visit(parent, [...chain, name]);
    }
    state.set(name, "done");
    order.push(name);
  };
  for (const name of Object.keys(images)) visit(name, []);
  return order;
}

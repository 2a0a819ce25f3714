import { templateReferences } from "../variables.js";
import type { Diagnostics } from "./diagnostics.js";
import type { PathSegment } from "./positions.js";
import type { BakeFile } from "./schema.js";

/** `{{ name }}` (a variable) and `{{ .Name }}` (a plugin's placeholder, as in Packer): the only template syntax there is. */
const KNOWN_TEMPLATE = /\{\{\s*\.?[A-Za-z_][A-Za-z0-9_]*\s*\}\}/g;

/**
 * Every `{{ name }}` must name a declared variable; sensitive ones may not end up in tags or labels; `{{` that is neither a
 * variable nor a plugin placeholder (unclosed, or another tool's syntax such as Packer's `{{user \`x\`}}`) is reported,
 * rather than left in a value.
 */
export function checkReferences(bakeFile: BakeFile, diagnostics: Diagnostics): void {
  const declared = bakeFile.variables;
  const sections: [PathSegment[], unknown][] = [
    [["steps"], bakeFile.steps],
    ...Object.entries(bakeFile.images).map(([name, image]): [PathSegment[], unknown] => [["images", name], image]),
  ];
  for (const [at, section] of sections) {
    walkStrings(section, at, (text, path) => {
      if (text.replace(KNOWN_TEMPLATE, "").includes("{{")) {
        diagnostics.add(path, "unfinished or unknown template syntax: variables are written {{ name }}", {
          hint: "close it with }}, or write {{ '{{' }} … as text by putting it in a variable",
        });
      }
      for (const name of templateReferences(text)) {
        if (!Object.hasOwn(declared, name)) {
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

/** Every string inside `value` with its path; iterative, so no nesting a file can hold overflows the stack. */
function walkStrings(value: unknown, path: PathSegment[], visit: (text: string, path: PathSegment[]) => void): void {
  const pending: [unknown, PathSegment[]][] = [[value, path]];
  while (pending.length > 0) {
    const [item, at] = pending.pop() as [unknown, PathSegment[]];
    if (typeof item === "string") visit(item, at);
    else if (Array.isArray(item)) {
      for (const [index, child] of item.entries()) pending.push([child, [...at, index]]);
    } else if (item !== null && typeof item === "object")
      for (const [key, child] of Object.entries(item)) pending.push([child, [...at, key]]);
  }
}

/**
 * Orders images so parents come first; reports missing parents and cycles. Iterative: a `from:` chain thousands of images
 * long is just a long list.
 */
/** `from:` chains deeper than this are refused: each level is a full bake on the one before. */
const MAX_GENERATIONS = 100;

export function dependencyOrder(bakeFile: BakeFile, diagnostics: Diagnostics): string[] {
  const images = bakeFile.images;
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const generations = new Map<string, number>();
  for (const start of Object.keys(images)) {
    // Walk up the chain of parents to the first one already placed (or missing), then place the chain top-down.
    const chain: string[] = [];
    let name: string | undefined = start;
    while (name !== undefined && state.get(name) !== "done") {
      if (state.get(name) === "visiting") {
        const cycle = [...chain.slice(chain.indexOf(name)), name];
        diagnostics.add(["images", name, "from"], `cycle in from: ${cycle.join(" → ")}`, {
          hint: "an image cannot be built on itself, directly or through others",
        });
        break;
      }
      state.set(name, "visiting");
      chain.push(name);
      const parent: string | undefined = images[name]?.from;
      if (parent !== undefined && !Object.hasOwn(images, parent)) {
        diagnostics.add(["images", name, "from"], `image "${parent}" is not defined`, {
          hint: `define it under images:, or use one of: ${Object.keys(images).slice(0, 20).join(", ")}`,
        });
        break;
      }
      name = parent;
    }
    for (const placed of chain.reverse()) {
      state.set(placed, "done");
      order.push(placed);
      const parent = images[placed]?.from;
      const generation = (parent === undefined ? 0 : (generations.get(parent) ?? 0)) + 1;
      generations.set(placed, generation);
      // Reported once per chain, at the first image past the limit.
      if (generation === MAX_GENERATIONS + 1) {
        diagnostics.add(["images", placed, "from"], `the from: chain above "${placed}" is more than ${MAX_GENERATIONS} images long`, {
          hint: "an image builds on a parent of a parent … a hundred generations at most",
        });
      }
    }
  }
  return order;
}

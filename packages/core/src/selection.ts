import type { ImageSpec } from "./config/load.js";
import { KilnError } from "./errors.js";

/** Images to bake: `only` adds their ancestors (children are built on them); `except` removes descendants too. */
export function selectImages(images: ImageSpec[], only?: string[], except?: string[]): ImageSpec[] {
  const byName = new Map(images.map((image) => [image.name, image]));
  for (const name of [...(only ?? []), ...(except ?? [])]) {
    if (!byName.has(name)) {
      throw new KilnError("E_CONFIG", `no image named "${name}"`, { hint: `images in this bake file: ${[...byName.keys()].join(", ")}` });
    }
  }
  let chosen = new Set(images.map((image) => image.name));
  if (only?.length) {
    chosen = new Set();
    const addWithAncestors = (name: string | undefined) => {
      for (let current = name; current !== undefined && !chosen.has(current); current = byName.get(current)?.from) chosen.add(current);
    };
    only.forEach(addWithAncestors);
  }
  const excluded = new Set(except ?? []);
  const isExcluded = (image: ImageSpec): boolean =>
    excluded.has(image.name) || (image.from !== undefined && isExcluded(byName.get(image.from) as ImageSpec));
  return images.filter((image) => chosen.has(image.name) && !isExcluded(image));
}

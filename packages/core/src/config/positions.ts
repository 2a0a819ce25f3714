import { isMap, isScalar, type Document, type LineCounter, type Node } from "yaml";

export type PathSegment = string | number;

export interface Position {
  line: number;
  column: number;
}

/** Finds where a path of the bake file was written. Files without positions (TypeScript configs) answer undefined. */
export interface SourceMap {
  /** Position of the value at `path` (or of its nearest written ancestor). */
  valueAt(path: readonly PathSegment[]): Position | undefined;
  /** Position of the key `path[-1]` in its map, for "unknown key" errors. */
  keyAt(path: readonly PathSegment[]): Position | undefined;
}

export const noPositions: SourceMap = { valueAt: () => undefined, keyAt: () => undefined };

export function yamlSourceMap(doc: Document, lines: LineCounter): SourceMap {
  const position = (node: Node | undefined | null): Position | undefined => {
    const offset = node?.range?.[0];
    if (offset === undefined) return undefined;
    const { line, col } = lines.linePos(offset);
    return { line, column: col };
  };
  const valueAt = (path: readonly PathSegment[]): Position | undefined => {
    for (let depth = path.length; depth >= 0; depth--) {
      const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
      if (node && typeof node === "object" && "range" in node) return position(node as Node);
    }
    return undefined;
  };
  const keyAt = (path: readonly PathSegment[]): Position | undefined => {
    const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
    const key = path[path.length - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
      if (pair && isScalar(pair.key)) return position(pair.key);
    }
    return valueAt(path);
  };
  return { valueAt, keyAt };
}

/** `images.web.provision[1].shell.inline` */
export function formatPath(path: readonly PathSegment[]): string {
  return path.reduce<string>((text, segment) => {
    if (typeof segment === "number") return `${text}[${segment}]`;
    const safe = /^[A-Za-z_$][\w$-]*$/.test(segment) ? segment : JSON.stringify(segment);
    return text ? `${text}.${safe}` : safe;
  }, "");
}

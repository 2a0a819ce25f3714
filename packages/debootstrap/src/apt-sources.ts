import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export interface AptSource {
  uri: string;
  suites: string[];
}

/**
 * The host's apt sources, in the order apt reads them: `/etc/apt/sources.list`, then `sources.list.d/*.list` and deb822
 * `*.sources` files. Only `deb` (binary) entries over http(s)/file are kept.
 */
export async function readAptSources(root = "/etc/apt"): Promise<AptSource[]> {
  const sources = parseOneLineSources(await readOptional(join(root, "sources.list")));
  const names = (await readdir(join(root, "sources.list.d")).catch(() => [] as string[])).sort();
  for (const name of names) {
    const text = await readOptional(join(root, "sources.list.d", name));
    if (name.endsWith(".list")) sources.push(...parseOneLineSources(text));
    else if (name.endsWith(".sources")) sources.push(...parseDeb822Sources(text));
  }
  return sources.filter((source) => /^(https?|file):/.test(source.uri));
}

/**
 * The Debian mirror to build `suite` from: a Debian archive (a URI ending in /debian) that carries the suite, else any Debian
 * archive, else any source that carries the suite — so a third-party repository listed first (packages.microsoft.com for
 * bookworm) is not taken for the distribution. Security archives are never picked.
 */
export function pickDebianMirror(sources: AptSource[], suite: string): string | undefined {
  const candidates = sources.filter((source) => !/security/.test(source.uri) && !source.suites.some((s) => s.includes("security")));
  const isArchive = (source: AptSource) => /\/debian\/?$/.test(source.uri);
  const carries = (source: AptSource) => source.suites.includes(suite);
  const match = candidates.find((s) => isArchive(s) && carries(s)) ?? candidates.find(isArchive) ?? candidates.find(carries);
  return match?.uri.replace(/\/$/, "");
}

function parseOneLineSources(text: string): AptSource[] {
  return text.split("\n").flatMap((raw) => {
    const line = raw.replace(/#.*/, "").trim();
    const fields = line
      .replace(/\[[^\]]*\]/, "")
      .trim()
      .split(/\s+/);
    if (fields[0] !== "deb" || !fields[1] || !fields[2]) return [];
    return [{ uri: fields[1], suites: [fields[2]] }];
  });
}

function parseDeb822Sources(text: string): AptSource[] {
  return text.split(/\n\s*\n/).flatMap((stanza) => {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split("\n")) {
      if (line.startsWith("#")) continue;
      // A line starting with white space continues the field above it (deb822 folding).
      if (/^\s/.test(line) && last !== undefined) {
        fields.set(last, `${fields.get(last) ?? ""} ${line.trim()}`);
        continue;
      }
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line.trim());
      if (match?.[1] && match[2] !== undefined) {
        last = match[1].toLowerCase();
        fields.set(last, match[2]);
      }
    }
    if (!(fields.get("types") ?? "").split(/\s+/).includes("deb")) return [];
    if (fields.get("enabled") === "no") return [];
    const suites = (fields.get("suites") ?? "").split(/\s+/).filter(Boolean);
    return (fields.get("uris") ?? "")
      .split(/\s+/)
      .filter(Boolean)
      .map((uri) => ({ uri, suites }));
  });
}

async function readOptional(path: string): Promise<string> {
  return readFile(path, "utf8").catch(() => "");
}

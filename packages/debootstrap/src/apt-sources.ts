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

/** The first Debian mirror that carries `suite` (else the first that looks like a Debian archive). */
export function pickDebianMirror(sources: AptSource[], suite: string): string | undefined {
  const debian = sources.filter((source) => !/security/.test(source.uri) && !source.suites.some((s) => s.includes("security")));
  const match = debian.find((source) => source.suites.includes(suite)) ?? debian.find((source) => /\/debian\/?$/.test(source.uri));
  return match?.uri.replace(/\/$/, "");
}

function parseOneLineSources(text: string): AptSource[] {
  return text.split("\n").flatMap((raw) => {
    const line = raw.replace(/#.*/, "").trim();
    const fields = line.replace(/\[[^\]]*\]/, "").trim().split(/\s+/);
    if (fields[0] !== "deb" || !fields[1] || !fields[2]) return [];
    return [{ uri: fields[1], suites: [fields[2]] }];
  });
}

function parseDeb822Sources(text: string): AptSource[] {
  return text.split(/\n\s*\n/).flatMap((stanza) => {
    const fields = new Map<string, string>();
    for (const line of stanza.split("\n")) {
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line.trim());
      if (match?.[1] && match[2] !== undefined && !line.startsWith("#")) fields.set(match[1].toLowerCase(), match[2]);
    }
    if (!(fields.get("types") ?? "").split(/\s+/).includes("deb")) return [];
    if (fields.get("enabled") === "no") return [];
    const suites = (fields.get("suites") ?? "").split(/\s+/).filter(Boolean);
    return (fields.get("uris") ?? "").split(/\s+/).filter(Boolean).map((uri) => ({ uri, suites }));
  });
}

async function readOptional(path: string): Promise<string> {
  return readFile(path, "utf8").catch(() => "");
}

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { type AptSource, pickDebianMirror, readAptSources } from "./apt-sources.js";

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-apt-sources-test-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An /etc/apt lookalike: path (from the root) → content. */
async function aptRoot(files: Record<string, string>): Promise<string> {
  const root = await tempDir();
  await mkdir(join(root, "sources.list.d"), { recursive: true });
  for (const [path, content] of Object.entries(files)) await writeFile(join(root, path), content);
  return root;
}

const SOURCES_LIST = `# The main archive, then a mirror with options
deb http://ftp.de.debian.org/debian bookworm main contrib   # trailing comment
deb-src http://ftp.de.debian.org/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/mirror.gpg] https://mirror.example.org/debian/ bookworm-updates main
#deb http://disabled.example.org/debian bookworm main
deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_]/ bookworm main
deb mirror+file:/etc/apt/mirrors/debian.list bookworm main

`;

const DEBIAN_SOURCES = `Types: deb deb-src
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian http://mirror2.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
  
Types: deb
URIs: http://disabled.example.org/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://sources-only.example.org/debian
Suites: bookworm
Components: main
`;

describe("readAptSources", () => {
  it("reads sources.list, then sources.list.d/*.list and deb822 *.sources in name order, keeping only enabled deb entries", async () => {
    const root = await aptRoot({
      "sources.list": SOURCES_LIST,
      // Written out of name order: apt (and Kiln) read them sorted by name.
      "sources.list.d/zz-local.list": "deb file:/srv/local-repo stable main\n",
      "sources.list.d/90-extra.list": "deb http://ninety.example.org/debian bookworm main\n",
      "sources.list.d/debian.sources": DEBIAN_SOURCES,
      "sources.list.d/30-extra.list": "deb http://thirty.example.org/debian bookworm main\n",
      "sources.list.d/20-extra.list": "deb http://twenty.example.org/debian bookworm main\n",
      "sources.list.d/10-backports.list": "deb http://deb.debian.org/debian bookworm-backports main\n",
      "sources.list.d/google-cloud-sdk.list.disabled-by-farm": "deb https://packages.cloud.google.com/apt cloud-sdk main\n",
      "sources.list.d/old.sources.save": "Types: deb\nURIs: http://old.example.org/debian\nSuites: bookworm\n",
    });
    expect(await readAptSources(root)).toEqual([
      { uri: "http://ftp.de.debian.org/debian", suites: ["bookworm"] },
      { uri: "https://mirror.example.org/debian/", suites: ["bookworm-updates"] },
      { uri: "http://deb.debian.org/debian", suites: ["bookworm-backports"] },
      { uri: "http://twenty.example.org/debian", suites: ["bookworm"] },
      { uri: "http://thirty.example.org/debian", suites: ["bookworm"] },
      { uri: "http://ninety.example.org/debian", suites: ["bookworm"] },
      { uri: "http://deb.debian.org/debian", suites: ["bookworm", "bookworm-updates"] },
      { uri: "http://mirror2.example.org/debian", suites: ["bookworm", "bookworm-updates"] },
      { uri: "http://deb.debian.org/debian-security", suites: ["bookworm-security"] },
      { uri: "file:/srv/local-repo", suites: ["stable"] },
    ]);
  });

  it("reads a host with only deb822 sources, or with no sources at all", async () => {
    const deb822Only = await aptRoot({ "sources.list.d/debian.sources": DEBIAN_SOURCES });
    expect((await readAptSources(deb822Only)).map((source) => source.uri)).toEqual([
      "http://deb.debian.org/debian",
      "http://mirror2.example.org/debian",
      "http://deb.debian.org/debian-security",
    ]);
    expect(await readAptSources(await aptRoot({}))).toEqual([]);
    expect(await readAptSources(join(await tempDir(), "no-such-apt-dir"))).toEqual([]);
  });
});

describe("pickDebianMirror", () => {
  const sources: AptSource[] = [
    { uri: "http://deb.debian.org/debian-security", suites: ["bookworm-security"] },
    { uri: "http://security.example.org/mirror", suites: ["bookworm", "bookworm-security"] },
    { uri: "https://mirror.example.org/debian/", suites: ["bookworm-updates"] },
    { uri: "http://ftp.de.debian.org/debian", suites: ["bookworm", "bookworm-updates"] },
    { uri: "http://archive.example.org/debian/", suites: ["trixie"] },
  ];

  it("picks the first non-security source that carries the suite, without a trailing slash", () => {
    expect(pickDebianMirror(sources, "bookworm")).toBe("http://ftp.de.debian.org/debian");
    expect(pickDebianMirror(sources, "bookworm-updates")).toBe("https://mirror.example.org/debian");
    expect(pickDebianMirror(sources, "trixie")).toBe("http://archive.example.org/debian");
  });

  it("falls back to the first source that looks like a Debian archive when none carries the suite", () => {
    expect(pickDebianMirror(sources, "sid")).toBe("https://mirror.example.org/debian");
    expect(pickDebianMirror([{ uri: "http://mirror.local/pub/deb", suites: ["bookworm"] }], "bookworm")).toBe(
      "http://mirror.local/pub/deb",
    );
  });

  it("never picks a security archive, and finds nothing on a host without a Debian archive", () => {
    expect(pickDebianMirror(sources.slice(0, 2), "bookworm")).toBeUndefined();
    expect(pickDebianMirror([{ uri: "http://deb.debian.org/debian-security", suites: ["bookworm"] }], "bookworm")).toBeUndefined();
    expect(pickDebianMirror([{ uri: "http://archive.ubuntu.com/ubuntu", suites: ["jammy", "jammy-updates"] }], "bookworm")).toBeUndefined();
    expect(pickDebianMirror([], "bookworm")).toBeUndefined();
  });

  it("picks the Debian mirror, not the security one, from apt files as Debian 12 ships them", async () => {
    const root = await aptRoot({ "sources.list.d/debian.sources": DEBIAN_SOURCES });
    expect(pickDebianMirror(await readAptSources(root), "bookworm")).toBe("http://deb.debian.org/debian");
  });
});

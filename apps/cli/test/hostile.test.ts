import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pLimit from "p-limit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain script of the repository, shared with `node scripts/hostile-corpus.mjs`.
import { hostileCases, SECRET, writeCase } from "../../../scripts/hostile-corpus.mjs";
import { CLI } from "./helpers.js";

interface HostileCase {
  files: Record<string, string | Buffer>;
  links?: Record<string, string>;
  fifos?: string[];
  args?: string[];
  secret?: boolean;
  secretText?: string;
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Cases whose problem is a var file given on the command line (not a place in the bake file): the message names it. */
const WHOLE_FILE = new Set(["var-file-dev-zero"]);
/** A Node stack frame: `    at loadProject (file:///…/load.js:12:3)`. */
const STACK_FRAME = /^\s+at .+:\d+:\d+\)?$/m;

/**
 * `kiln validate` on one case, as a reviewer's CI would run it: a heap of 200 MB at most, and killed after 30 s — a case that
 * needs either has failed (the results say so; nothing here asserts how fast a case was).
 */
function validate(dir: string, args: string[]): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--max-old-space-size=200", CLI, "validate", "-C", dir, ...args], {
      env: { ...process.env, CI: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
}

describe("hostile bake files: kiln validate refuses every one with exit 2 and a position, and nothing else happens", () => {
  const cases = hostileCases() as Record<string, HostileCase>;
  const outcomes = new Map<string, Outcome>();
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-hostile-"));
    const limit = pLimit(4);
    await Promise.all(
      Object.entries(cases).map(([name, hostileCase]) =>
        limit(async () => {
          const dir = join(root, "projects", name);
          writeCase(dir, hostileCase);
          outcomes.set(name, await validate(dir, hostileCase.args ?? []));
        }),
      ),
    );
    const slowest = [...outcomes.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 3);
    console.log(
      `hostile corpus: ${outcomes.size} cases; slowest ${slowest.map(([name, outcome]) => `${name} ${outcome.ms}ms`).join(", ")}`,
    );
  }, 600_000);
  afterAll(() => rm(root, { recursive: true, force: true }));

  it.each(Object.keys(cases))("%s", (name) => {
    const outcome = outcomes.get(name) as Outcome;
    const hostileCase = cases[name] as HostileCase;
    const output = `${outcome.stdout}${outcome.stderr}`;
    expect(outcome, output.slice(0, 2000)).toMatchObject({ code: 2, signal: null });
    expect(outcome.stderr).toMatch(WHOLE_FILE.has(name) ? /(kiln\.yaml|\/dev\/zero)/ : /kiln\.yaml:\d+:\d+: /);
    expect(outcome.stderr).not.toMatch(STACK_FRAME);
    // Bounded: one mistake made a hundred thousand times is one line, a 1.5 MB name is cut.
    expect(output.length).toBeLessThan(64 * 1024);
    // Escape sequences from the file never reach the terminal.
    expect(output).not.toContain("\u001b");
    if (hostileCase.secret) expect(output).not.toContain(hostileCase.secretText ?? SECRET);
  });

  it("ran no code the bake files pointed at, and wrote nothing outside the projects", async () => {
    const projects = await readdir(join(root, "projects"));
    for (const project of projects) expect(existsSync(join(root, "projects", project, "RAN")), project).toBe(false);
    expect(existsSync(join(root, "RAN"))).toBe(false);
    expect(existsSync("/tmp/kiln-corpus-x")).toBe(false);
  });

  it("can be written out for people to run: node scripts/hostile-corpus.mjs <dir>", async () => {
    const out = join(root, "written");
    const script = fileURLToPath(new URL("../../../scripts/hostile-corpus.mjs", import.meta.url));
    const code = await new Promise((resolve) => spawn(process.execPath, [script, out], { stdio: "ignore" }).on("close", resolve));
    expect(code).toBe(0);
    expect((await readdir(out)).sort()).toEqual(Object.keys(cases).sort());
  });
});

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import type { VariableDefinition } from "./config/schema.js";
import type { VariableValue } from "./types.js";
import { createRedactor, interpolate, parseVarFlag, redactDeep, resolveVariables, type VariableInputs } from "./variables.js";
import { failure } from "../test/failure.js";

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-vars-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const version: Record<string, VariableDefinition> = { version: { default: "1.0" } };

async function resolveVersion(inputs: VariableInputs, cwd?: string): Promise<string | undefined> {
  const { values } = await resolveVariables(version, inputs, cwd ?? (await tempDir()));
  return values.version?.value;
}

describe("resolveVariables precedence", () => {
  it("uses the default when nothing else sets the variable", async () => {
    expect(await resolveVersion({})).toBe("1.0");
  });

  it("lets a YAML var file override the default", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "vars.yaml"), "version: '2.0'\n");
    expect(await resolveVersion({ varFiles: ["vars.yaml"] }, dir)).toBe("2.0");
  });

  it("lets a JSON var file override the default", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "vars.json"), JSON.stringify({ version: "2.1" }));
    expect(await resolveVersion({ varFiles: ["vars.json"] }, dir)).toBe("2.1");
  });

  it("lets a later var file override an earlier one", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "a.yaml"), "version: from-a\n");
    await writeFile(join(dir, "b.json"), JSON.stringify({ version: "from-b" }));
    expect(await resolveVersion({ varFiles: ["a.yaml", "b.json"] }, dir)).toBe("from-b");
  });

  it("lets KILN_VAR_<name> override a var file", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "vars.yaml"), "version: from-file\n");
    expect(await resolveVersion({ varFiles: ["vars.yaml"], env: { KILN_VAR_version: "from-env" } }, dir)).toBe("from-env");
  });

  it("lets --var override KILN_VAR_<name>", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "vars.yaml"), "version: from-file\n");
    const inputs = { varFiles: ["vars.yaml"], env: { KILN_VAR_version: "from-env" }, vars: { version: "from-flag" } };
    expect(await resolveVersion(inputs, dir)).toBe("from-flag");
  });

  it("keeps an empty --var value instead of falling back to the default", async () => {
    expect(await resolveVersion({ vars: { version: "" } })).toBe("");
  });

  it("reads var files relative to the given directory", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "prod.yaml"), "version: prod\n");
    expect(await resolveVersion({ varFiles: ["prod.yaml"] }, dir)).toBe("prod");
  });

  it("turns number and boolean values into strings", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "vars.yaml"), "port: 8080\ndebug: true\n");
    const { values } = await resolveVariables({ port: {}, debug: {}, replicas: { default: 3 } }, { varFiles: ["vars.yaml"] }, dir);
    expect(values).toEqual({
      port: { value: "8080", sensitive: false },
      debug: { value: "true", sensitive: false },
      replicas: { value: "3", sensitive: false },
    });
  });

  it("marks variables declared sensitive", async () => {
    const { values } = await resolveVariables({ token: { sensitive: true } }, { vars: { token: "hunter2" } }, await tempDir());
    expect(values.token).toEqual({ value: "hunter2", sensitive: true });
  });

  it("ignores KILN_VAR_ environment variables the bake file does not declare", async () => {
    const result = await resolveVariables(version, { env: { KILN_VAR_other: "x", PATH: "/bin" } }, await tempDir());
    expect(result).toEqual({ values: { version: { value: "1.0", sensitive: false } }, problems: [] });
  });
});

describe("resolveVariables problems", () => {
  it("reports a --var the bake file does not declare", async () => {
    const { problems } = await resolveVariables(version, { vars: { verison: "2.0" } }, await tempDir());
    expect(problems).toEqual([{ name: "verison", declared: false, message: '--var sets "verison", which the bake file does not declare' }]);
  });

  it("reports a var file that sets a variable the bake file does not declare, naming the file", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "vars.yaml"), "verison: '2.0'\n");
    const { problems } = await resolveVariables(version, { varFiles: ["vars.yaml"] }, dir);
    expect(problems.map((problem) => problem.message)).toEqual([
      '--var-file vars.yaml sets "verison", which the bake file does not declare',
    ]);
  });

  it("names a variable with no value and says how to pass it", async () => {
    const { values, problems } = await resolveVariables({ registry_token: { sensitive: true } }, {}, await tempDir());
    expect(values).toEqual({});
    expect(problems).toEqual([
      {
        name: "registry_token",
        declared: true,
        message: 'variable "registry_token" has no value: pass --var registry_token=… or set KILN_VAR_registry_token',
      },
    ]);
  });

  it("lists every missing or unknown variable at once", async () => {
    const { problems } = await resolveVariables({ a: {}, b: {} }, { vars: { c: "1" } }, await tempDir());
    expect(problems.map((problem) => problem.message)).toEqual([
      '--var sets "c", which the bake file does not declare',
      'variable "a" has no value: pass --var a=… or set KILN_VAR_a',
      'variable "b" has no value: pass --var b=… or set KILN_VAR_b',
    ]);
  });

  it("still resolves the variables that have values", async () => {
    const { values } = await resolveVariables({ a: {}, b: { default: "x" } }, {}, await tempDir());
    expect(values).toEqual({ b: { value: "x", sensitive: false } });
  });

  it("refuses a var file that is not a map", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "vars.yaml"), "- version\n");
    const error = await failure(resolveVariables(version, { varFiles: ["vars.yaml"] }, dir));
    expect(error.code).toBe("E_VARIABLE");
    expect(error.message).toBe(`var file ${join(dir, "vars.yaml")} must hold a map of name: value`);
  });

  it("refuses a var file that cannot be read", async () => {
    const dir = await tempDir();
    const error = await failure(resolveVariables(version, { varFiles: ["missing.yaml"] }, dir));
    expect(error.code).toBe("E_VARIABLE");
    expect(error.message).toContain(`cannot read var file ${join(dir, "missing.yaml")}`);
  });
});

describe("parseVarFlag", () => {
  it("splits name=value", () => {
    expect(parseVarFlag("app_version=1.4.2")).toEqual(["app_version", "1.4.2"]);
  });

  it("splits at the first = only, so values may contain =", () => {
    expect(parseVarFlag("query=a=b")).toEqual(["query", "a=b"]);
  });

  it("accepts an empty value", () => {
    expect(parseVarFlag("suffix=")).toEqual(["suffix", ""]);
  });

  it.each(["app_version", "=1.4.2"])("refuses %j, which is not name=value", (flag) => {
    expect(() => parseVarFlag(flag)).toThrow(expect.objectContaining({ code: "E_VARIABLE", hint: "write --var app_version=1.4.2" }));
  });
});

const vars: Record<string, VariableValue> = {
  version: { value: "1.4.2", sensitive: false },
  token: { value: "hunter2", sensitive: true },
};

describe("interpolate", () => {
  it("replaces {{ name }} with or without spaces", () => {
    expect(interpolate("acme/web:{{ version }} {{version}}", vars)).toBe("acme/web:1.4.2 1.4.2");
  });

  it("replaces inside nested arrays and objects", () => {
    const value = { tags: ["a:{{ version }}"], env: { TOKEN: "{{ token }}" } };
    expect(interpolate(value, vars)).toEqual({ tags: ["a:1.4.2"], env: { TOKEN: "hunter2" } });
  });

  it("leaves unknown names as written", () => {
    expect(interpolate("{{ nope }}-{{ version }}", vars)).toBe("{{ nope }}-1.4.2");
  });

  it("leaves numbers, booleans and null alone", () => {
    expect(interpolate({ port: 80, on: true, none: null }, vars)).toEqual({ port: 80, on: true, none: null });
  });

  it("does not change the value it is given", () => {
    const value = { tags: ["{{ version }}"] };
    interpolate(value, vars);
    expect(value).toEqual({ tags: ["{{ version }}"] });
  });
});

describe("createRedactor", () => {
  it("hides every sensitive value", () => {
    const redact = createRedactor({
      token: { value: "hunter2", sensitive: true },
      password: { value: "s3cret", sensitive: true },
    });
    expect(redact("login hunter2 / s3cret; again hunter2")).toBe("login <sensitive> / <sensitive>; again <sensitive>");
  });

  it("hides a value that contains another secret whole (longest first)", () => {
    const redact = createRedactor({
      short: { value: "abc", sensitive: true },
      long: { value: "abcdef", sensitive: true },
    });
    expect(redact("key=abcdef other=abc")).toBe("key=<sensitive> other=<sensitive>");
  });

  it("hides a multi-line secret printed a line at a time: every line of 8 or more characters, not the short ones", () => {
    const key =
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\nAAAAAAAAAAAAAAAAAAAA=\n}\n-----END OPENSSH PRIVATE KEY-----";
    const redact = createRedactor({ key: { value: key, sensitive: true } });
    const printed = key.split("\n").map((line) => redact(`  ${line}`));
    expect(printed).toEqual(["  <sensitive>", "  <sensitive>", "  <sensitive>", "  }", "  <sensitive>"]);
    expect(redact(`key:\n${key}\n`)).toBe("key:\n<sensitive>\n");
  });

  it("leaves non-sensitive values visible", () => {
    const redact = createRedactor(vars);
    expect(redact("version 1.4.2 token hunter2")).toBe("version 1.4.2 token <sensitive>");
  });

  it("leaves text untouched when nothing is sensitive", () => {
    const redact = createRedactor({ version: { value: "1.4.2", sensitive: false } });
    expect(redact("version 1.4.2")).toBe("version 1.4.2");
  });

  it("ignores an empty sensitive value instead of garbling text", () => {
    const redact = createRedactor({ token: { value: "", sensitive: true } });
    expect(redact("plain text")).toBe("plain text");
  });
});

describe("redactDeep", () => {
  const redact = createRedactor(vars);

  it("redacts strings inside nested objects and arrays", () => {
    const event = { type: "log", message: "using hunter2", lines: ["a hunter2", "b"], error: { message: "bad hunter2" } };
    expect(redactDeep(event, redact)).toEqual({
      type: "log",
      message: "using <sensitive>",
      lines: ["a <sensitive>", "b"],
      error: { message: "bad <sensitive>" },
    });
  });

  it("keeps numbers, booleans and null", () => {
    expect(redactDeep({ durationMs: 12, ok: true, parent: null }, redact)).toEqual({ durationMs: 12, ok: true, parent: null });
  });

  it("does not change the value it is given", () => {
    const event = { message: "using hunter2" };
    redactDeep(event, redact);
    expect(event.message).toBe("using hunter2");
  });
});

import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exitCodeMeaning, puppetOutput, resourcePath } from "./output.js";

describe("resourcePath", () => {
  it("reads the resource from a report line, titles with slashes, spaces, colons and brackets included", () => {
    expect(resourcePath("/Stage[main]/Main/Exec[/bin/false]/returns: change from 'notrun' to ['0'] failed")).toBe(
      "/Stage[main]/Main/Exec[/bin/false]",
    );
    expect(resourcePath("/Stage[main]/Web::Config/File[/etc/a b: c]: Could not evaluate")).toBe(
      "/Stage[main]/Web::Config/File[/etc/a b: c]",
    );
    expect(resourcePath("/Stage[main]/Main/Exec[echo [x]]: Skipping because of failed dependencies")).toBe(
      "/Stage[main]/Main/Exec[echo [x]]",
    );
    expect(resourcePath("Could not find class nosuch")).toBeUndefined();
    expect(resourcePath("/Stage[main]/Main/Exec[unclosed: oops")).toBeUndefined();
  });
});

describe("puppetOutput", () => {
  it("forwards whole lines, drops Facter's /proc/1/environ noise, strips colours for matching, keeps errors and the tail", () => {
    const forwarded: string[] = [];
    const output = puppetOutput((stream, line) => forwarded.push(`${stream}:${line}`));
    output.add(
      "stderr",
      "Error: Facter: Permission denied @ rb_sysopen - /proc/1/environ\nError: Facter: Permission denied @ rb_sysopen - /proc/1/env",
    );
    output.add("stderr", "iron\n\u001b[1;31mError: /Stage[main]/Main/Exec[x]/returns: failed\u001b[0m\r\n");
    output.add("stdout", "Notice: Applied catalog");
    output.flush();
    expect(forwarded).toEqual([
      "stderr:\u001b[1;31mError: /Stage[main]/Main/Exec[x]/returns: failed\u001b[0m\n",
      "stdout:Notice: Applied catalog\n",
    ]);
    expect(output.failedResources()).toEqual(["/Stage[main]/Main/Exec[x]"]);
    expect(output.errors()).toEqual(["Error: /Stage[main]/Main/Exec[x]/returns: failed"]);
    expect(output.tail()).toEqual(["Error: /Stage[main]/Main/Exec[x]/returns: failed", "Notice: Applied catalog"]);
  });

  it("names each exit code of --detailed-exitcodes", () => {
    expect(exitCodeMeaning(2)).toBe("changes applied");
    expect(exitCodeMeaning(4)).toBe("some resources failed");
    expect(exitCodeMeaning(6)).toBe("changes applied, but some resources failed");
    expect(exitCodeMeaning(1)).toMatch(/could not compile/);
  });
});

/** The parser against what Puppet 7 really prints: the host's puppet (apt-get install -y puppet), not a recording. */
describe("puppetOutput on real puppet apply output", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-puppet-output-"));
    const found = await new Promise<boolean>((done) => execFile("puppet", ["--version"], (error) => done(!error)));
    if (!found) throw new Error("these tests run puppet apply on this host: install it with apt-get install -y puppet");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("finds the failed and skipped resources of a run that exits 6", async () => {
    const manifest = join(dir, "failing.pp");
    await writeFile(
      manifest,
      `exec { '/bin/false': }\nfile { '${dir}/after': content => 'x', require => Exec['/bin/false'] }\nfile { '${dir}/changed': content => 'y' }\n`,
    );
    const forwarded: string[] = [];
    const output = puppetOutput((_stream, line) => forwarded.push(line));
    const code = await new Promise<number>((done) => {
      const child = execFile("puppet", ["apply", "--detailed-exitcodes", "--color=false", `--vardir=${join(dir, "var")}`, manifest]);
      child.stdout?.on("data", (chunk: Buffer) => output.add("stdout", chunk.toString()));
      child.stderr?.on("data", (chunk: Buffer) => output.add("stderr", chunk.toString()));
      child.on("close", (exit) => done(exit ?? -1));
    });
    output.flush();
    expect(code).toBe(6);
    expect(output.failedResources()).toEqual(["/Stage[main]/Main/Exec[/bin/false]"]);
    expect(output.skippedResources()).toEqual([`/Stage[main]/Main/File[${dir}/after]`]);
    expect(output.errors()).toContain("Error: '/bin/false' returned 1 instead of one of [0]");
    expect(forwarded.some((line) => line.includes("/proc/1/environ"))).toBe(false);
    expect(forwarded.some((line) => line.includes(`File[${dir}/changed]/ensure: defined content`))).toBe(true);
  });
});

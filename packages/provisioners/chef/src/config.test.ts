import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { nodeJson, rubyString, soloRb, type StagedLayout } from "./config.js";

/** Evaluates solo.rb with the host's Ruby the way Chef's config DSL reads it (each line a method call), as JSON. */
function evalRuby(source: string): Record<string, unknown> {
  const program =
    "c = {}; o = Object.new; o.define_singleton_method(:method_missing) { |n, *a| c[n.to_s] = a.first }; " +
    "o.instance_eval(STDIN.read); print JSON.generate(c)";
  return JSON.parse(execFileSync("ruby", ["-rjson", "-e", program], { input: source, encoding: "utf8" })) as Record<string, unknown>;
}

const awkward = [
  "plain",
  'quote " and \\ backslash',
  "interpolation #{`id`} #@x #$y",
  "tab\tnewline\ncr\r",
  "bell\u0007 del\u007f",
  "ünïcødé ✓",
  "'single'",
];

describe("rubyString", () => {
  it("escapes backslash, quote, # and control characters, and keeps UTF-8", () => {
    expect(rubyString("/tmp/kiln-chef-Ab12Cd/cookbooks-0")).toBe('"/tmp/kiln-chef-Ab12Cd/cookbooks-0"');
    expect(rubyString('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(rubyString("#{x}")).toBe('"\\#{x}"');
    expect(rubyString("a\nb\tc\rd")).toBe('"a\\nb\\tc\\rd"');
    expect(rubyString("\u0000\u001b\u007f")).toBe('"\\u{0}\\u{1b}\\u{7f}"');
    expect(rubyString("ünï ✓")).toBe('"ünï ✓"');
    for (const value of awkward) expect(rubyString(value)).not.toContain("\n");
  });

  it("reads back as the same string in real Ruby (the host's ruby), with nothing interpolated or run", () => {
    const source = awkward.map((value, index) => `k${index} ${rubyString(value)}`).join("\n");
    expect(Object.values(evalRuby(source))).toEqual(awkward);
  });
});

describe("soloRb", () => {
  const layout: StagedLayout = {
    staging: "/tmp/kiln-chef-Ab12Cd",
    cookbookPaths: ["/tmp/kiln-chef-Ab12Cd/cookbooks-0", "/tmp/kiln-chef-Ab12Cd/cookbooks-1"],
    rolePath: "/tmp/kiln-chef-Ab12Cd/roles",
    environmentPath: "/tmp/kiln-chef-Ab12Cd/environments",
    dataBagPath: "/tmp/kiln-chef-Ab12Cd/data_bags",
    secretPath: "/tmp/kiln-chef-Ab12Cd/encrypted_data_bag_secret",
    environment: "production",
  };

  it("points every path at the staged copies and keeps Chef's caches and saved node inside the staging directory", () => {
    expect(soloRb(layout)).toBe(
      [
        "# Written by Kiln (@kiln/provisioner-chef); removed with the staging directory.",
        'cookbook_path ["/tmp/kiln-chef-Ab12Cd/cookbooks-0", "/tmp/kiln-chef-Ab12Cd/cookbooks-1"]',
        'role_path "/tmp/kiln-chef-Ab12Cd/roles"',
        'environment_path "/tmp/kiln-chef-Ab12Cd/environments"',
        'data_bag_path "/tmp/kiln-chef-Ab12Cd/data_bags"',
        'encrypted_data_bag_secret "/tmp/kiln-chef-Ab12Cd/encrypted_data_bag_secret"',
        'environment "production"',
        'chef_repo_path "/tmp/kiln-chef-Ab12Cd"',
        'cache_path "/tmp/kiln-chef-Ab12Cd/cache"',
        'file_cache_path "/tmp/kiln-chef-Ab12Cd/cache/files"',
        'file_backup_path "/tmp/kiln-chef-Ab12Cd/cache/backup"',
        'node_path "/tmp/kiln-chef-Ab12Cd/nodes"',
        "",
      ].join("\n"),
    );
  });

  it("leaves out what is not configured", () => {
    const text = soloRb({ staging: "/s", cookbookPaths: ["/s/cookbooks-0"] });
    expect(text).not.toMatch(/^(role_path|environment_path|data_bag_path|encrypted_data_bag_secret|environment) /m);
    expect(text).toContain('cookbook_path ["/s/cookbooks-0"]\n');
  });

  it("is valid Ruby that gives Chef exactly the paths, even for a staging directory with quotes, spaces and #{}", () => {
    const staging = `/var/tmp/chef "stage" #{boom} \\x`;
    const config = evalRuby(
      soloRb({ staging, cookbookPaths: [`${staging}/cookbooks-0`], secretPath: `${staging}/secret`, environment: "prod" }),
    );
    expect(config).toMatchObject({
      cookbook_path: [`${staging}/cookbooks-0`],
      encrypted_data_bag_secret: `${staging}/secret`,
      environment: "prod",
      file_cache_path: `${staging}/cache/files`,
      node_path: `${staging}/nodes`,
    });
  });
});

describe("nodeJson", () => {
  it("writes the attributes with run_list and chef_environment", () => {
    expect(JSON.parse(nodeJson(["role[web]", "recipe[app::db]"], { app: { port: 80 } }, "production"))).toEqual({
      app: { port: 80 },
      run_list: ["role[web]", "recipe[app::db]"],
      chef_environment: "production",
    });
    expect(JSON.parse(nodeJson(["recipe[app]"]))).toEqual({ run_list: ["recipe[app]"] });
  });
});

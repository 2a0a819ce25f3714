import { describe, expect, it } from "vitest";
import { bakeKey, canonicalJson, describeChanges, inputSummary, sha256, type BakeKeyInput } from "./bake-key.js";
import type { VariableValue } from "./types.js";

function input(overrides: Partial<BakeKeyInput> = {}): BakeKeyInput {
  return {
    driver: "docker",
    driverOptions: { source: "debian:bookworm", privileged: false, build: { network: "host", user: "root" } },
    source: { id: "sha256:aaa", digest: "sha256:ddd", description: "debian:bookworm" },
    provision: [
      { name: "shell", options: { inline: ["apt-get update"] }, fingerprint: "fp-shell" },
      { name: "file", options: { source: "./site/", destination: "/var/www/" }, fingerprint: "fp-file" },
    ],
    verify: [{ name: "default", checks: [{ command: "nginx -t" }] }],
    plugins: ["@kiln/driver-docker@0.1.0", "@kiln/provisioner-file@0.1.0", "@kiln/provisioner-shell@0.1.0"],
    ...overrides,
  };
}

const noVariables: Record<string, VariableValue> = {};

describe("bakeKey", () => {
  it("is a sha256 hex digest", () => {
    expect(bakeKey(input(), noVariables)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is the same for the same input", () => {
    expect(bakeKey(input(), noVariables)).toBe(bakeKey(input(), noVariables));
  });

  it("does not depend on the order keys were written in", () => {
    const reordered = input({
      driverOptions: { build: { user: "root", network: "host" }, privileged: false, source: "debian:bookworm" },
      provision: [
        { fingerprint: "fp-shell", options: { inline: ["apt-get update"] }, name: "shell" },
        { options: { destination: "/var/www/", source: "./site/" }, name: "file", fingerprint: "fp-file" },
      ],
    });
    expect(bakeKey(reordered, noVariables)).toBe(bakeKey(input(), noVariables));
  });

  it("changes when a driver option changes", () => {
    const changed = input({ driverOptions: { source: "debian:bookworm", privileged: true, build: { network: "host", user: "root" } } });
    expect(bakeKey(changed, noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("changes when the driver changes", () => {
    expect(bakeKey(input({ driver: "lxc" }), noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("changes when the resolved source id changes", () => {
    const changed = input({ source: { id: "sha256:bbb", digest: "sha256:ddd", description: "debian:bookworm" } });
    expect(bakeKey(changed, noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("changes when the source digest changes", () => {
    const changed = input({ source: { id: "sha256:aaa", digest: "sha256:eee", description: "debian:bookworm" } });
    expect(bakeKey(changed, noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("does not change when only the source's human description changes", () => {
    const changed = input({ source: { id: "sha256:aaa", digest: "sha256:ddd", description: "debian (renamed)" } });
    expect(bakeKey(changed, noVariables)).toBe(bakeKey(input(), noVariables));
  });

  it("changes when a provisioner's fingerprint (its script or file contents) changes", () => {
    const changed = input({
      provision: [
        { name: "shell", options: { inline: ["apt-get update"] }, fingerprint: "fp-shell-edited" },
        { name: "file", options: { source: "./site/", destination: "/var/www/" }, fingerprint: "fp-file" },
      ],
    });
    expect(bakeKey(changed, noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("changes when a provisioner's options change", () => {
    const changed = input({
      provision: [
        { name: "shell", options: { inline: ["apt-get update", "apt-get upgrade"] }, fingerprint: "fp-shell" },
        { name: "file", options: { source: "./site/", destination: "/var/www/" }, fingerprint: "fp-file" },
      ],
    });
    expect(bakeKey(changed, noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("changes when provisioners run in another order", () => {
    const [first, second] = input().provision as [BakeKeyInput["provision"][number], BakeKeyInput["provision"][number]];
    const swapped = input({ provision: [second, first] });
    expect(bakeKey(swapped, noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("changes when the verify block changes", () => {
    const changed = input({ verify: [{ name: "default", checks: [{ command: "nginx -v" }] }] });
    expect(bakeKey(changed, noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("changes when a plugin package's version changes (a fixed driver rebakes what it baked)", () => {
    const upgraded = input({ plugins: ["@kiln/driver-docker@0.2.0", "@kiln/provisioner-file@0.1.0", "@kiln/provisioner-shell@0.1.0"] });
    expect(bakeKey(upgraded, noVariables)).not.toBe(bakeKey(input(), noVariables));
  });

  it("does not change because of non-sensitive variables", () => {
    const withVariables = { version: { value: "1.4.2", sensitive: false } };
    expect(bakeKey(input(), withVariables)).toBe(bakeKey(input(), noVariables));
  });
});

describe("bakeKey with sensitive values", () => {
  const withToken = (token: string) =>
    input({
      provision: [{ name: "shell", options: { inline: [`login --token ${token}`] }, fingerprint: `script using ${token}` }],
    });
  const secret = (value: string): Record<string, VariableValue> => ({ token: { value, sensitive: true } });

  it("changes when a secret changes", () => {
    expect(bakeKey(withToken("hunter2"), secret("hunter2"))).not.toBe(bakeKey(withToken("swordfish"), secret("swordfish")));
  });

  it("is the same for the same secret", () => {
    expect(bakeKey(withToken("hunter2"), secret("hunter2"))).toBe(bakeKey(withToken("hunter2"), secret("hunter2")));
  });

  it("never contains the secret", () => {
    // A secret made of hex digits could otherwise show up in a hex digest.
    const key = bakeKey(withToken("c0ffee"), secret("c0ffee"));
    expect(key).not.toContain("c0ffee");
  });

  it("hashes a secret's hash, not the secret: the key equals one where the secret is replaced by its hash", () => {
    // If the raw secret went into the hashed material, replacing it with its hash would change the key.
    const placeholder = `<sensitive:${sha256("hunter2").slice(0, 16)}>`;
    expect(bakeKey(withToken("hunter2"), secret("hunter2"))).toBe(bakeKey(withToken(placeholder), noVariables));
  });

  it("hides the longer of two secrets whole when one contains the other", () => {
    const both = { short: { value: "abc", sensitive: true }, long: { value: "abcdef", sensitive: true } };
    const placeholder = `<sensitive:${sha256("abcdef").slice(0, 16)}>`;
    expect(bakeKey(withToken("abcdef"), both)).toBe(bakeKey(withToken(placeholder), noVariables));
  });
});

describe("canonicalJson", () => {
  it("sorts object keys at every depth", () => {
    expect(canonicalJson({ b: 1, a: { d: 2, c: 3 } })).toBe('{"a":{"c":3,"d":2},"b":1}');
  });

  it("keeps array order", () => {
    expect(canonicalJson(["b", "a", { z: 1, y: 2 }])).toBe('["b","a",{"y":2,"z":1}]');
  });

  it("gives equal text for equal values written in another order", () => {
    expect(canonicalJson({ x: [1, { q: true, p: null }], w: "s" })).toBe(canonicalJson({ w: "s", x: [1, { p: null, q: true }] }));
  });
});

describe("describeChanges", () => {
  const names = { steps: ["shell", "file"] };
  it("names a plugin whose version changed, and one added", () => {
    const before = inputSummary(input(), noVariables);
    const after = inputSummary(
      input({
        plugins: ["@kiln/driver-docker@0.2.0", "@kiln/provisioner-file@0.1.0", "@kiln/provisioner-shell@0.1.0", "kiln-provisioner-x@1.0.0"],
      }),
      noVariables,
    );
    expect(describeChanges(before, after, names)).toEqual([
      "plugin changed (@kiln/driver-docker 0.1.0 → 0.2.0, kiln-provisioner-x 1.0.0 added)",
    ]);
  });

  it("says nothing of plugins for an artefact baked before versions were recorded", () => {
    const { plugins: _plugins, ...before } = inputSummary(input(), noVariables);
    expect(describeChanges(before, inputSummary(input(), noVariables), names)).toEqual([]);
  });
});

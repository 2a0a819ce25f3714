import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kiln, project, runIdOf } from "./helpers.js";

// The chroot driver keeps artefacts in a store under the state directory: a private one for these tests.
let state: string;
beforeAll(async () => {
  state = await mkdtemp(join(tmpdir(), "kiln-cli-chroot-state-"));
});
afterAll(() => rm(state, { recursive: true, force: true }));

const BAKE_FILE = `
images:
  rootfs:
    driver: chroot
    source: { debootstrap: { suite: bookworm, variant: minbase, include: [python3] } }
    provision:
      - shell: { inline: ["echo 'hello from a chroot bake' > /etc/motd"] }
    verify:
      checks:
        - file: { path: /etc/motd, contains: "hello from a chroot bake" }
    tags: ["acme/rootfs:1.0"]
`;

describe("kiln with the chroot driver", () => {
  it("bakes a root file system tarball, verifies it, and lists it by tag", { timeout: 600_000 }, async () => {
    await using dir = await project({ "kiln.yaml": BAKE_FILE });
    const env = { KILN_STATE_DIR: state };
    const validate = await kiln(["validate", "-C", dir.dir], { env });
    expect(validate.code, validate.stdout + validate.stderr).toBe(0);
    const build = await kiln(["build", "-C", dir.dir], { env });
    expect(build.code, build.stdout + build.stderr).toBe(0);
    expect(build.stdout).toMatch(/rootfs: ✓ file \/etc\/motd/);
    const id = /^rootfs: (\S+) \(acme\/rootfs:1\.0\)$/m.exec(build.stdout)?.[1] as string;
    expect(id).toBeTruthy();
    const tarball = join(state, "driver-chroot", "artifacts", id, "rootfs.tar");
    expect(execFileSync("tar", ["-xOf", tarball, "./etc/motd"], { encoding: "utf8" })).toBe("hello from a chroot bake\n");
    const images = await kiln(["images", "-C", dir.dir], { env });
    expect(images.stdout).toMatch(new RegExp(`rootfs  ${id}.*acme/rootfs:1\\.0`));
    // Nothing of the bake is left on the host but the artefact: no machine tree, no mount.
    const runId = runIdOf(build.stdout, build.stderr);
    expect(
      execFileSync("/bin/sh", ["-c", `ls /tmp/kiln-chroot | grep -c ${runId} || true; grep -c ${runId} /proc/self/mounts || true`], {
        encoding: "utf8",
      }),
    ).toBe("0\n0\n");
  });
});

import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, type Machine } from "@kiln/core";
import { launchFixture } from "@kiln/driver-docker/testing";
import { createTestContext, execOk, testPluginInit, writeFiles } from "@kiln/test-suite";
import ansible, { type AnsibleOptions } from "../src/index.js";
import { motdPlaybook } from "./fixtures.js";

const run = promisify(execFile);
/** Whether the playbook's `sleep 120` runs in the machine (minbase has no pgrep; the build container's keep-alive sleeps too). */
const SLEEPING = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done 2>/dev/null | grep -qx 'sleep 120 '";
let dir: string;
const provisioner = () => ansible(testPluginInit("provisioner", "ansible", { cwd: dir }));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kiln-ansible-options-"));
  await writeFiles(dir, motdPlaybook);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function validated(options: unknown): Promise<AnsibleOptions> {
  const result = await provisioner().schema["~standard"].validate(options);
  if (result.issues) throw new Error(result.issues.map((issue) => issue.message).join("; "));
  return result.value;
}

/** Runs the step on a fresh fixture container; returns the machine (removed after the test) and the output lines. */
async function provision(options: unknown, prepare?: (machine: Machine) => Promise<void>) {
  const test = createTestContext({ cwd: dir });
  const machine = await launchFixture(test.ctx);
  await prepare?.(machine);
  const error = await provisioner()
    .run(test.ctx, machine, await validated(options))
    .then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
  return { machine, error, output: test.output(), test };
}

describe("ansible options", () => {
  it("installs roles from a local tarball named in galaxy_file, and passes groups, group vars, tags and skip_tags", async () => {
    await writeFiles(dir, {
      "galaxy/greeting/meta/main.yml":
        "galaxy_info: { author: kiln, description: greeting, license: MIT, min_ansible_version: '2.14' }\ndependencies: []\n",
      "galaxy/greeting/tasks/main.yml": `- name: greet
  ansible.builtin.copy: { content: "{{ greeting_text }} in {{ group_names | join(',') }}\\n", dest: /etc/greeting }
  tags: [greet]
- name: not wanted
  ansible.builtin.copy: { content: "x", dest: /etc/unwanted }
  tags: [unwanted]
`,
      "galaxy/site.yml": "- hosts: web\n  gather_facts: false\n  roles: [greeting]\n",
      "galaxy/requirements.yml": "roles:\n  - src: ./vendor/greeting.tar.gz\n    name: greeting\n",
    });
    await mkdir(join(dir, "galaxy/vendor"), { recursive: true });
    await run("tar", ["-czf", join(dir, "galaxy/vendor/greeting.tar.gz"), "-C", join(dir, "galaxy"), "greeting"]);
    await rm(join(dir, "galaxy/greeting"), { recursive: true });
    const { machine, error, test } = await provision({
      playbook_file: "galaxy/site.yml",
      galaxy_file: "galaxy/requirements.yml",
      groups: ["web", "eu"],
      inventory_group_vars: { greeting_text: "hello" },
      tags: ["greet", "unwanted"],
      skip_tags: ["unwanted"],
    });
    await using _ = test;
    expect(error).toBeUndefined();
    expect(await execOk(machine, "cat /etc/greeting")).toBe("hello in eu,web\n");
    expect((await machine.exec("test -e /etc/unwanted")).exitCode).toBe(1);
  });

  it("reads ansible_cfg and ansible_env_vars, and check mode changes nothing on the machine", async () => {
    await writeFiles(dir, {
      "config/ansible.cfg": "[defaults]\nforks = 7\n",
      "config/site.yml": `- hosts: all
  gather_facts: false
  tasks:
    - name: settings
      ansible.builtin.debug: { msg: "forks={{ lookup('config', 'DEFAULT_FORKS') }} timeout={{ lookup('config', 'DEFAULT_TIMEOUT') }} check={{ ansible_check_mode }}" }
    - name: write a file
      ansible.builtin.copy: { content: "x", dest: /etc/checked }
`,
    });
    const options = { playbook_file: "config/site.yml", ansible_cfg: "config/ansible.cfg", ansible_env_vars: ["ANSIBLE_TIMEOUT=17"] };
    const checked = await provision({ ...options, check: true });
    await using _checked = checked.test;
    expect(checked.error).toBeUndefined();
    expect(checked.output).toContain("    forks=7 timeout=17 check=True");
    expect(checked.output).toContain("changed   default | write a file");
    expect((await checked.machine.exec("test -e /etc/checked")).exitCode).toBe(1);
    const applied = await provision(options);
    await using _applied = applied.test;
    expect(applied.output).toContain("    forks=7 timeout=17 check=False");
    expect(await execOk(applied.machine, "cat /etc/checked")).toBe("x");
  });

  it("runs the playbook inside the machine with mode: local, and removes what it staged", async () => {
    const { machine, error, output, test } = await provision(
      { playbook_file: "ansible/site.yml", mode: "local", extra_vars: { greeting: "local" }, host_alias: "box" },
      // A real ansible-playbook inside the machine: Debian's ansible-core, installed as an image would carry it.
      async (machine) => {
        const install = await machine.exec(
          "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ansible-core",
          {
            user: "root",
          },
        );
        if (install.exitCode !== 0) throw new Error(`installing ansible-core failed: ${install.stderr}`);
      },
    );
    await using _ = test;
    expect(error).toBeUndefined();
    expect(await execOk(machine, "cat /etc/motd-kiln")).toBe("local from box as root\n");
    expect(output.join("\n")).toMatch(/PLAY RECAP/);
    expect(await execOk(machine, "ls /tmp")).not.toMatch(/kiln-ansible-/);
  });

  it("says the machine has no python3 and names install_python, which installs it first", async () => {
    // Python removed from the fixture the hard way, as a minimal image would lack it.
    const removePython = async (machine: Machine) => {
      await execOk(
        machine,
        "dpkg --purge --force-depends,remove-essential python3 python3.11 python3-minimal python3.11-minimal >/dev/null 2>&1",
      );
    };
    const missing = await provision({ playbook_file: "ansible/site.yml" }, removePython);
    await using _missing = missing.test;
    expect(missing.error).toBeInstanceOf(KilnError);
    expect((missing.error as KilnError).message).toBe("ansible: the machine has no python3, which Ansible's modules need");
    expect((missing.error as KilnError).hint).toMatch(/install_python: true/);

    const installed = await provision({ playbook_file: "ansible/site.yml", install_python: true }, removePython);
    await using _installed = installed.test;
    expect(installed.error).toBeUndefined();
    expect(await execOk(installed.machine, "cat /etc/motd-kiln")).toBe("hello from default as root\n");
  });

  it("stops the playbook on Ctrl-C: ansible-playbook and its children end, and the work directory goes with the bake", async () => {
    await writeFiles(dir, {
      "slow/site.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: wait\n      ansible.builtin.command: sleep 120\n",
    });
    const controller = new AbortController();
    const test = createTestContext({ cwd: dir, signal: controller.signal });
    const machine = await launchFixture(test.ctx);
    const before = await workDirs();
    const running = provisioner()
      .run(test.ctx, machine, await validated({ playbook_file: "slow/site.yml" }))
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    // Interrupt once the task's command runs in the container.
    for (let i = 0; i < 300 && (await machine.exec(SLEEPING)).exitCode !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await machine.exec(SLEEPING)).exitCode).toBe(0);
    const ours = (await workDirs()).filter((name) => !before.includes(name));
    expect(ours).toHaveLength(1);
    controller.abort(new KilnError("E_INTERRUPTED", "interrupted"));
    expect(await running).toBeInstanceOf(KilnError);
    const { stdout } = await run("ps", ["-eo", "args"]);
    // Neither ansible-playbook (its command line names the work directory) nor a `docker exec` into the machine is left.
    const container = machine.connection.kind === "docker" ? machine.connection.container : "?";
    expect(
      stdout.split("\n").filter((line) => line.includes(ours[0] ?? "?") || (line.includes("docker exec") && line.includes(container))),
    ).toEqual([]);
    await test.cleanup();
    expect(await workDirs()).not.toContain(ours[0]);
  });
});

async function workDirs(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith("kiln-ansible-") && !dir.endsWith(name));
}

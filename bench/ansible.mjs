#!/usr/bin/env node
// The Ansible step's overhead over running the same playbook by hand, in one interleaved run on this machine:
//   (a) Kiln's ansible step, as timed by the bake's own step.end event (in-process bake, fixture image + one ansible step)
//   (b) ansible-playbook by hand against a running container (community.docker.docker), Ansible's defaults
//   (c) the same with the settings Kiln uses (pipelining, the jsonl callback)
//   (d) the whole bake: Kiln, against docker run + ansible-playbook + docker commit + docker rm by hand
// Usage: node bench/ansible.mjs [--runs 7]   (after pnpm build; needs ansible-playbook: apt-get install -y ansible)
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const runsFlag = process.argv.indexOf("--runs");
const RUNS = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 7;
const dist = (path) => import(join(root, path));
const { BuildRun, loadProject } = await dist("packages/core/dist/engine.js");
const { default: docker } = await dist("packages/drivers/docker/dist/index.js");
const { ensureFixtureImage, FIXTURE_IMAGE } = await dist("packages/drivers/docker/dist/testing.js");
const { default: ansible } = await dist("packages/provisioners/ansible/dist/index.js");
await ensureFixtureImage();

// A role with a template, a handler and a command, as in the provisioner's tests: Ansible's work, not the network's.
const work = mkdtempSync(join(tmpdir(), "kiln-bench-ansible-"));
const files = {
  "ansible/site.yml": "- hosts: all\n  become: true\n  gather_facts: false\n  roles: [motd]\n",
  "ansible/roles/motd/tasks/main.yml":
    "- name: who\n  ansible.builtin.command: id -un\n  register: who\n  changed_when: false\n" +
    '- name: motd\n  ansible.builtin.template: { src: motd.j2, dest: /etc/motd-kiln, mode: "0644" }\n  notify: written\n',
  "ansible/roles/motd/handlers/main.yml": "- name: written\n  ansible.builtin.shell: echo handler > /etc/motd-handler-ran\n",
  "ansible/roles/motd/templates/motd.j2": "hello from {{ inventory_hostname }} as {{ who.stdout }}\n",
  "kiln.yaml": JSON.stringify({
    images: { motd: { driver: "docker", source: FIXTURE_IMAGE, provision: [{ ansible: { playbook_file: "ansible/site.yml" } }] } },
  }),
};
for (const [path, content] of Object.entries(files)) {
  mkdirSync(dirname(join(work, path)), { recursive: true });
  writeFileSync(join(work, path), content);
}

function sh(command, args, env = {}) {
  const result = spawnSync(command, args, { cwd: work, env: { ...process.env, ...env }, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout.trim();
}
const timed = (fn) => {
  const started = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
};
const timedAsync = async (fn) => {
  const started = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, value };
};

/** ansible-playbook by hand against a running container, as a person would run it. */
function playbookByHand(container, env) {
  writeFileSync(
    join(work, "inventory.ini"),
    `${container} ansible_connection=community.docker.docker ansible_user=root ansible_become_method=su\n`,
  );
  return timed(() => sh("ansible-playbook", ["-i", "inventory.ini", "ansible/site.yml"], { ANSIBLE_NOCOLOR: "1", ...env }));
}

const kilnSettings = { ANSIBLE_PIPELINING: "True", ANSIBLE_STDOUT_CALLBACK: "ansible.posix.jsonl" };
const samples = { step: [], handDefault: [], handKiln: [], bake: [], bakeHand: [] };

async function kilnBake() {
  const project = await loadProject(join(work, "kiln.yaml"), { plugins: { registry: { drivers: { docker }, provisioners: { ansible } } } });
  const events = [];
  const { ms, value } = await timedAsync(() =>
    new BuildRun({ project, kilnVersion: "bench", force: true, onEvent: (e) => events.push(e) }).run(),
  );
  if (!value.ok) throw new Error(`kiln bake failed: ${JSON.stringify(value.records[0]?.error)}`);
  const step = events.find((event) => event.type === "step.end" && event.step === "provision");
  sh("docker", ["rmi", "-f", value.records[0].artifact.id]);
  return { bake: ms, step: step.durationMs };
}

function bakeByHand() {
  return timed(() => {
    const container = sh("docker", ["run", "-d", "--label", "dev.kiln.build=bench", FIXTURE_IMAGE, "sleep", "infinity"]);
    playbookByHand(container, kilnSettings);
    const image = sh("docker", ["commit", container]);
    sh("docker", ["rm", "-f", container]);
    sh("docker", ["rmi", "-f", image]);
  });
}

try {
  for (let round = 0; round <= RUNS; round++) {
    const kiln = await kilnBake();
    const container = sh("docker", ["run", "-d", "--label", "dev.kiln.build=bench", FIXTURE_IMAGE, "sleep", "infinity"]);
    const handDefault = playbookByHand(container, {});
    sh("docker", ["rm", "-f", container]);
    const again = sh("docker", ["run", "-d", "--label", "dev.kiln.build=bench", FIXTURE_IMAGE, "sleep", "infinity"]);
    const handKiln = playbookByHand(again, kilnSettings);
    sh("docker", ["rm", "-f", again]);
    const bakeHand = bakeByHand();
    if (round === 0) continue; // warm-up
    samples.step.push(kiln.step);
    samples.bake.push(kiln.bake);
    samples.handDefault.push(handDefault);
    samples.handKiln.push(handKiln);
    samples.bakeHand.push(bakeHand);
  }
} finally {
  const left = spawnSync("docker", ["ps", "-aq", "--filter", "label=dev.kiln.build=bench"], { encoding: "utf8" })
    .stdout.split("\n")
    .filter(Boolean);
  if (left.length) spawnSync("docker", ["rm", "-f", ...left]);
}
const version = sh("ansible-playbook", ["--version"]).split("\n")[0];
rmSync(work, { recursive: true, force: true });

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const m = Object.fromEntries(Object.entries(samples).map(([key, values]) => [key, median(values)]));
console.log(`\n${version}; median of ${RUNS} runs each (after one warm-up round), ${new Date().toISOString()}\n`);
console.log(`  Kiln's ansible step (step.end)                         ${m.step.toFixed(0).padStart(6)} ms`);
console.log(`  ansible-playbook by hand, Ansible's defaults           ${m.handDefault.toFixed(0).padStart(6)} ms`);
console.log(`  ansible-playbook by hand, Kiln's settings             ${m.handKiln.toFixed(0).padStart(6)} ms`);
console.log(`  Kiln bake (launch, ansible, capture; in-process)      ${m.bake.toFixed(0).padStart(6)} ms`);
console.log(`  by hand: docker run + ansible-playbook + commit + rm  ${m.bakeHand.toFixed(0).padStart(6)} ms`);
console.log("\nratios");
console.log(
  `  Kiln step / by hand, same settings    ${(m.step / m.handKiln).toFixed(2)}×   (overhead ${(m.step - m.handKiln).toFixed(0)} ms)`,
);
console.log(`  Kiln step / by hand, Ansible defaults ${(m.step / m.handDefault).toFixed(2)}×`);
console.log(`  Kiln bake / by-hand bake              ${(m.bake / m.bakeHand).toFixed(2)}×`);

#!/usr/bin/env node
// The hostile-input corpus: bake files a security reviewer would try, each of which `kiln validate` must refuse with exit 2 and
// a file:line:col, without running code, touching files outside the project, crashing, hanging or eating memory.
//   node scripts/hostile-corpus.mjs <dir>   writes every case into <dir>/<case>/ (kiln.yaml, its files, args.json)
// apps/cli/test/hostile.test.ts runs the same cases through the real CLI.
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { execFileSync } from "node:child_process";

const SECRET = "hunter2-corpus-secret";
const secret = `variables:\n  token: { sensitive: true, default: ${SECRET} }\n`;
const image = (extra) => `images:\n  web:\n    driver: docker\n    source: debian\n${extra}`;
const step = (yaml) => image(`    provision:\n      - ${yaml}\n`);
const tags = (...list) => image(`    tags: [${list.map((tag) => JSON.stringify(tag)).join(", ")}]\n`);

/**
 * Every case: `files` to write (path → content), `links` (path → target), `fifos` (paths), `args` for `kiln validate` after
 * `-C <dir>`, and `secret`: the case must not print {@link SECRET}. Written out, a case is a directory a person can run.
 */
export function hostileCases() {
  const cases = {};
  const add = (name, files, extra = {}) => {
    cases[name] = { files: typeof files === "string" ? { "kiln.yaml": files } : files, ...extra };
  };

  // Syntax, structure and encoding.
  add("yaml-syntax", "images:\n  web: { driver: docker\n");
  add("yaml-tab-indent", "images:\n\tweb: {}\n");
  add("yaml-duplicate-key", "images:\n  web: { driver: docker, source: a }\n  web: { driver: docker, source: b }\n");
  add("yaml-bom-crlf-unknown-key", "\uFEFFimages:\r\n  web: { driver: docker, source: a, colour: blue }\r\n");
  add("yaml-undefined-alias", "images:\n  web: *nope\n");
  add("yaml-alias-before-anchor", "images:\n  a: *x\n  b: &x { driver: docker, source: s }\n");
  const bomb = [
    "a: &a [x,x,x,x,x,x,x,x,x,x]",
    ..."bcdefgh".split("").map((level, i) => `${level}: &${level} [${Array(10).fill(`*${"abcdefg"[i]}`).join(",")}]`),
  ];
  add("yaml-alias-bomb", `${bomb.join("\n")}\nimages: {}\n`);
  add("yaml-merge-key", "base: &b { driver: docker }\nimages:\n  web: { <<: *b, source: s }\n");
  add("yaml-js-key-collision", image('    labels: { 1: a, "1": b }\n'));
  add("yaml-null-key-collision", image('    labels: { ~: a, "null": b }\n'));
  add("empty-file", "");
  add("comments-only", "# nothing here\n");
  add("not-a-map", "- just\n- a list\n");
  add("deep-nesting", `images:\n  web: { driver: docker, source: s, labels: ${"[".repeat(200)}${"]".repeat(200)} }\n`);
  add("invalid-utf8", {
    "kiln.yaml": Buffer.concat([
      Buffer.from('images:\n  web: { driver: docker, source: "'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('" }\n'),
    ]),
  });
  add("control-chars-in-key", 'images:\n  "\\e]0;pwned\\a\\e[2J": { driver: docker, source: s }\n');
  add("huge-name", `images:\n  ${"n".repeat(1_500_000)}: { driver: docker, source: s }\n`);
  add("flood-of-one-mistake", image(`    labels: { a: "${"{{ nope }}".repeat(6_000)}" }\n`));
  add("too-large", image(`    labels: { a: "${"x".repeat(300_000)}" }\n`));

  // Names that are members of Object.prototype.
  add("from-constructor", `${image("")}  x: { driver: docker, from: constructor }\n`);
  add("from-proto", `${image("")}  x: { driver: docker, from: __proto__ }\n`);
  add("use-constructor", step("use: constructor"));
  add("variable-constructor", image('    tags: ["a/b:{{ constructor }}"]\n'));
  add("variable-proto", `variables:\n  __proto__: { default: x }\n${image("")}`);
  add("image-proto", "images:\n  __proto__: { driver: docker, source: s }\n");

  // Long chains and exponential expansion.
  const chain = (length) =>
    Array.from({ length }, (_, i) => `  i${i}: { driver: docker, ${i === 0 ? `source: s, from: i${length - 1}` : `from: i${i - 1}`} }`);
  add("from-cycle-5000", `images:\n${chain(5000).join("\n")}\n`);
  add("from-cycle-900", `images:\n${chain(900).join("\n")}\n`);
  const lists = (length) => Array.from({ length }, (_, i) => `  l${i}: [{ use: l${i + 1} }]`);
  add("use-chain-5000", `steps:\n${lists(5000).join("\n")}\n  l5000: [{ shell: { inline: [x] } }]\n${step("use: l0")}`);
  add("use-chain-900", `steps:\n${lists(900).join("\n")}\n  l900: [{ shell: { inline: [x] } }]\n${step("use: l0")}`);
  const doubling = Array.from({ length: 40 }, (_, i) => `  d${i}: [{ use: d${i + 1} }, { use: d${i + 1} }]`);
  add("use-exponential", `steps:\n${doubling.join("\n")}\n  d40: [{ shell: { inline: [x] } }]\n${step("use: d0")}`);

  // Durations, numbers and retries.
  for (const [name, value] of [
    ["huge", "99999999999h"],
    ["600h", "600h"],
    ["zero", "0"],
    ["fraction-ms", "1.5ms"],
    ["exponent", "1e20"],
    ["negative", "-5"],
  ]) {
    add(`timeout-${name}`, image(`    timeout: ${value}\n`));
  }
  add("pause-before-huge", step("shell: { inline: [x], pause_before: 1e12 }"));
  add("max-retries-huge", step("shell: { inline: [x], max_retries: 1000000 }"));
  add("status-out-of-range", image("    verify: { checks: [{ http: { port: 80, status: 99999 } }] }\n"));
  add("exit-code-out-of-range", image("    verify: { checks: [{ command: { run: x, exit_code: 256 } }] }\n"));
  add("uid-negative", image("    verify: { checks: [{ user: { name: x, uid: -1 } }] }\n"));
  add("regex-uncompilable", image('    verify: { checks: [{ file: { path: /x, matches: "(a" } }] }\n'));
  add("regex-backreference", image('    verify: { checks: [{ file: { path: /x, matches: "(a+)\\\\1" } }] }\n'));

  // Plugins are package names, never code the bake file points at.
  const evil = `import { writeFileSync } from "node:fs";\nwriteFileSync(new URL("./RAN", import.meta.url), "ran");\nexport default () => ({});\n`;
  for (const [name, driver] of [
    ["relative", "./evil.mjs"],
    ["parent", "../evil.mjs"],
    ["absolute", "/tmp/evil.mjs"],
    ["data-url", "data:text/javascript,process.exit(7)"],
    ["file-url", "file:///tmp/evil.mjs"],
  ]) {
    add(`driver-${name}`, { "kiln.yaml": `images:\n  web: { driver: ${JSON.stringify(driver)}, source: s }\n`, "evil.mjs": evil });
  }
  add("provisioner-path", { "kiln.yaml": step('"./evil.mjs": { x: 1 }'), "evil.mjs": evil });
  add("plugin-outside-project", {
    "kiln.yaml": "plugins:\n  drivers: { box: /tmp/evil.mjs }\nimages:\n  web: { driver: box, source: s }\n",
  });
  add(
    "plugin-link-outside",
    { "kiln.yaml": "plugins:\n  drivers: { box: ./link.mjs }\nimages:\n  web: { driver: box, source: s }\n" },
    { links: { "link.mjs": "/etc/hostname" } },
  );

  // The project stays confined.
  add("file-source-passwd", step("file: { source: ../../../../../../etc/passwd, destination: /x }"));
  add("file-source-shadow", step("file: { source: /etc/shadow, destination: /x }"));
  add("file-source-link", step("file: { source: ./link, destination: /x }"), { links: { link: "/etc/passwd" } });
  add("file-source-fifo", step("file: { source: ./pipe, destination: /x }"), { fifos: ["pipe"] });
  add("script-shadow", step("shell: { script: /etc/shadow }"));
  add("script-dev-zero", step("shell: { script: ./zero.sh }"), { links: { "zero.sh": "/dev/zero" } });
  add("script-fifo", step("shell: { script: ./pipe.sh }"), { fifos: ["pipe.sh"] });
  add("download-parent", step("file: { source: /etc/hosts, destination: ../../../../tmp/kiln-corpus-x, direction: download }"));
  add("download-absolute", step("file: { source: /etc/hosts, destination: /tmp/kiln-corpus-x, direction: download }"));
  add("volume-root", image("    volumes: { /: /host }\n"));
  add("volume-docker-socket", image("    volumes: { /var/run/docker.sock: /var/run/docker.sock }\n"));
  add("privileged", image("    privileged: true\n"));
  add(
    "user-data-file",
    "images:\n  ami: { driver: ec2, region: us-east-1, source: ami-1, instance_type: t3.micro, ssh_username: admin, user_data_file: /etc/passwd }\n",
  );
  add("bake-file-dev-zero", {}, { links: { "kiln.yaml": "/dev/zero" } });
  add("bake-file-fifo", {}, { fifos: ["kiln.yaml"] });
  add("var-file-dev-zero", image(""), { args: ["--var-file", "/dev/zero"] });

  // Secrets never shown, never baked in the clear.
  add("secret-in-changes-env", `${secret}${image('    changes: { env: { TOKEN: "{{ token }}" } }\n')}`, { secret: true });
  add("secret-in-changes-lines", `${secret}${image('    changes: ["ENV TOKEN={{ token }}"]\n')}`, { secret: true });
  add("secret-in-tags", `${secret}${image('    tags: ["a/b:{{ token }}"]\n')}`, { secret: true });
  add("secret-in-labels", `${secret}${image('    labels: { auth: "{{ token }}" }\n')}`, { secret: true });
  add("secret-in-execute-command", `${secret}${step('shell: { inline: [x], execute_command: "T={{ token }} sh {{ .Path }}" }')}`, {
    secret: true,
  });
  add("secret-as-driver", `${secret}images:\n  web: { driver: "{{ token }}", source: s }\n`, { secret: true });
  add("secret-in-runtime-only", `${secret}${image('    runtime_only: ["{{ token }}"]\n')}`, { secret: true });
  add(
    "secret-multiline-in-labels",
    `variables:\n  key: { sensitive: true, default: "line-one-of-the-key\\nline-two-of-the-key" }\n${image('    labels: { k: "{{ key }}" }\n')}`,
    { secret: true, secretText: "line-two-of-the-key" },
  );

  // What the platform would refuse only after a launch.
  add(
    "tags-not-references",
    tags(
      "Acme/Web:1",
      "a b",
      "web:",
      "web:-x",
      "x@sha256:00",
      "-web",
      "web/",
      "//web",
      "web:a:b",
      "WEB",
      "we..b",
      "web__:1",
      `web:${"t".repeat(200)}`,
    ),
  );
  add("source-not-a-reference", image("").replace("source: debian", 'source: "UPPER/case:1"'));
  add("changes-not-instructions", image('    changes: ["RUN rm -rf /", "FROM scratch"]\n'));
  add("expose-out-of-range", image("    changes: { expose: [70000] }\n"));
  add("expose-line-out-of-range", image('    changes: ["EXPOSE 0"]\n'));
  add(
    "from-other-driver",
    "images:\n  ami: { driver: ec2, region: us-east-1, source: ami-1, instance_type: t3.micro, ssh_username: admin }\n  web: { driver: docker, from: ami }\n",
  );
  add("reserved-label", image("    labels: { dev.kiln.key: forged }\n"));
  add("template-unclosed", image('    tags: ["a/b:{{ version"]\n'));
  add("template-foreign", image('    labels: { a: "{{user `x`}}" }\n'));

  // Messages that used to say only "invalid input".
  add("verify-misspelt", image('    verify: { chekcs: [{ command: "true" }] }\n'));
  add("debootstrap-misspelt", image("").replace("source: debian", "source: { debootstrap: { suit: bookworm } }"));
  add("check-kind-unknown", image("    verify: { checks: [{ nosuch: x }] }\n"));
  add("port-as-text", image('    verify: { checks: [{ port: "80" }] }\n'));
  return cases;
}

/** Writes one case into `dir` (created), with its links and FIFOs. */
export function writeCase(dir, hostileCase) {
  mkdirSync(dir, { recursive: true });
  for (const [path, content] of Object.entries(hostileCase.files)) writeFileSync(join(dir, path), content);
  for (const [path, target] of Object.entries(hostileCase.links ?? {})) symlinkSync(target, join(dir, path));
  for (const path of hostileCase.fifos ?? []) execFileSync("mkfifo", [join(dir, path)]);
  writeFileSync(join(dir, "args.json"), `${JSON.stringify(hostileCase.args ?? [])}\n`);
}

export { SECRET };

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write("usage: node scripts/hostile-corpus.mjs <dir>\n");
    process.exit(2);
  }
  const cases = hostileCases();
  for (const [name, hostileCase] of Object.entries(cases)) writeCase(join(out, name), hostileCase);
  process.stdout.write(`wrote ${Object.keys(cases).length} cases to ${out}: run kiln validate -C <case> $(cat <case>/args.json | …)\n`);
}

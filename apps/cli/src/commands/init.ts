import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { KilnError } from "@kiln/core";
import { parseCommandArgs } from "../args.js";

const STARTER = `# yaml-language-server: $schema=./node_modules/@kiln/cli/schema/kiln.schema.json
# A Kiln bake file: \`kiln build\` bakes every image below, parents first.
variables:
  version: { default: "0.1.0" }

images:
  base:
    driver: docker
    # A Debian tree built on this machine from its apt mirror; no registry needed.
    source: { debootstrap: { suite: bookworm, include: [ca-certificates] } }
    provision:
      - shell: { inline: ["apt-get clean", "rm -rf /var/lib/apt/lists/*"] }
    tags: ["my/base:{{ version }}"]

  app:
    from: base
    driver: docker
    provision:
      - shell: { inline: ["echo 'hello from kiln' > /etc/motd"] }
    changes: { cmd: ["cat", "/etc/motd"] }
    verify:
      checks:
        - file: { path: /etc/motd, contains: hello }
    tags: ["my/app:{{ version }}"]
`;

export async function init(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs("init", argv);
  const path = resolve(values.dir ?? ".", "kiln.yaml");
  try {
    await writeFile(path, STARTER, { flag: values.force ? "w" : "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new KilnError("E_CONFIG", `${path} already exists`, { hint: "pass --force to overwrite it" });
    }
    throw error;
  }
  process.stdout.write(`wrote ${path}\nnext: kiln validate && kiln build\n`);
  return 0;
}

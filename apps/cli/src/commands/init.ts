import { writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { KilnError } from "@kiln/core";
import { parseCommandArgs } from "../args.js";
import { projectJsonSchema } from "./schema.js";

/** Written next to kiln.yaml: the bake file's schema with the options of the plugins installed for this project. */
const SCHEMA_FILE = "kiln.schema.json";

const STARTER = `# yaml-language-server: $schema=./${SCHEMA_FILE}
# A Kiln bake file: \`kiln build\` bakes every image below, parents first, and skips those that have not changed.
variables:
  version: { default: "0.1.0" }

images:
  base:
    driver: docker
    # A Debian tree built on this machine from its apt mirror; no registry needed.
    source: { debootstrap: { suite: bookworm, include: [python3] } }
    provision:
      - shell: { inline: ["apt-get clean", "rm -rf /var/lib/apt/lists/*"] }
    tags: ["my/base:{{ version }}"]

  app:
    from: base
    driver: docker
    provision:
      - shell: { inline: ["mkdir -p /srv", "echo 'hello from kiln' > /srv/index.html"] }
    changes: { cmd: ["python3", "-m", "http.server", "8000", "--directory", "/srv"], expose: [8000] }
    # Proof from a fresh container started from the new image.
    verify:
      checks:
        - http: { port: 8000, body_contains: hello }
    tags: ["my/app:{{ version }}"]
`;

export async function init(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs("init", argv);
  const path = resolve(values.dir ?? ".", "kiln.yaml");
  try {
    await writeFile(path, STARTER, { flag: values.force ? "w" : "wx" });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new KilnError("E_CONFIG", `${path} already exists`, { hint: "pass --force to overwrite it" });
    if (code === "ENOENT" || code === "ENOTDIR")
      throw new KilnError("E_CONFIG", `no directory ${resolve(values.dir ?? ".")}`, {
        hint: "create it first, or pass -C <an existing directory>",
      });
    if (code === "EACCES") throw new KilnError("E_CONFIG", `cannot write ${path}: permission denied`);
    throw error;
  }
  // Regenerated, not kept: it only reflects what is installed, so an existing one is replaced.
  const schemaPath = join(dirname(path), SCHEMA_FILE);
  const json = await projectJsonSchema(dirname(path), (message) => process.stderr.write(`kiln: warning: ${message}\n`));
  await writeFile(schemaPath, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(
    `wrote ${path}\nwrote ${schemaPath} (editor completion; after adding a plugin: kiln schema > ${SCHEMA_FILE})\n` +
      "next: kiln validate && kiln build\n",
  );
  return 0;
}

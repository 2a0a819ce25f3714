import { writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Where the baked image keeps its proof, and what it says. */
export const BAKED_FILE = "/etc/kiln-packaging";

/**
 * The one bake file the installed packages bake (through the programmatic API and through `kiln build`, installed with pnpm and
 * with npm): one Docker image from the fixture base, a shell step, a verify check from a fresh container, a tag. The project name
 * labels the image (`dev.kiln.project`), so a test finds and removes what it baked.
 */
export async function writeDockerBakeFile(
  dir: string,
  options: { project: string; source: string; message: string },
): Promise<{ file: string; tag: string }> {
  const file = join(dir, "kiln.yaml");
  const tag = `${options.project}/hello:1`;
  await writeFile(
    file,
    `project: ${options.project}
images:
  hello:
    driver: docker
    source: ${options.source}
    provision:
      - shell: { inline: ["echo '${options.message}' > ${BAKED_FILE}"] }
    verify:
      checks:
        - file: { path: ${BAKED_FILE}, contains: "${options.message}" }
    tags: ["${tag}"]
`,
  );
  return { file, tag };
}

/**
 * A bake with the example third-party driver, named as a user would (`driver: unshare` → `kiln-driver-unshare`): a Debian tree
 * from debootstrap (the recipe of the Docker fixture image, so its cached tree is reused), a shell step, and a check from a
 * fresh machine started from the captured tarball.
 */
export async function writeUnshareBakeFile(dir: string, options: { project: string; message: string }): Promise<{ file: string }> {
  const file = join(dir, "kiln.yaml");
  await writeFile(
    file,
    `project: ${options.project}
images:
  rootfs:
    driver: unshare
    source: { debootstrap: { suite: bookworm, variant: minbase, include: [python3] } }
    provision:
      - shell: { inline: ["echo '${options.message}' > ${BAKED_FILE}"] }
    verify:
      checks:
        - file: { path: ${BAKED_FILE}, contains: "${options.message}" }
`,
  );
  return { file };
}

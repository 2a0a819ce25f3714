import { bakeFileJsonSchema } from "@kiln/core";

/** Prints the bake file's JSON Schema, with the options of the first-party plugins this CLI ships. */
export async function schema(): Promise<number> {
  const [docker, shell, file] = await Promise.all([
    import("@kiln/driver-docker"),
    import("@kiln/provisioner-shell"),
    import("@kiln/provisioner-file"),
  ]);
  const cwd = { cwd: process.cwd() };
  const json = bakeFileJsonSchema({
    drivers: { docker: docker.default(cwd).schema },
    provisioners: { shell: shell.default().schema, file: file.default().schema },
  });
  process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  return 0;
}

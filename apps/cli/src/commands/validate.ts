import { parseCommandArgs } from "../args.js";
import { openProject } from "../project.js";

export async function validate(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("validate", argv);
  const project = await openProject(values, positionals[0]);
  const names = project.images.map((image) => image.name);
  if (values.json) process.stdout.write(`${JSON.stringify({ valid: true, file: project.file, images: names })}\n`);
  else process.stdout.write(`${project.file} is valid: ${names.length} image${names.length === 1 ? "" : "s"} (${names.join(", ")})\n`);
  return 0;
}

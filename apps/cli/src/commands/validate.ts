import { formatDiagnostic } from "@kiln/core";
import { parseCommandArgs } from "../args.js";
import { openProject } from "../project.js";

/** `kiln validate`: every problem at once (exit 2), running no code of the project; notes say what would run code. */
export async function validate(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("validate", argv);
  const project = await openProject(values, positionals[0], { runProjectCode: false });
  const names = project.images.map((image) => image.name);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ valid: true, file: project.file, images: names, notices: project.notices })}\n`);
    return 0;
  }
  process.stdout.write(`${project.file} is valid: ${names.length} image${names.length === 1 ? "" : "s"} (${names.join(", ")})\n`);
  for (const notice of project.notices) process.stdout.write(`note: ${formatDiagnostic(notice)}\n`);
  return 0;
}

import { formatDiagnostic } from "@kiln/core";
import { redactDeep, type Project } from "@kiln/core/engine";
import { parseCommandArgs } from "../args.js";
import { openProject } from "../project.js";

export async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("inspect", argv);
  const project = await openProject(values, positionals[0], { runProjectCode: false });
  const description = describeProject(project);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(description, null, 2)}\n`);
    return 0;
  }
  const lines = [`bake file: ${description.file}`, "", "variables:"];
  for (const [name, value] of Object.entries(description.variables)) lines.push(`  ${name} = ${value}`);
  if (Object.keys(description.variables).length === 0) lines.push("  (none)");
  lines.push("", "images (in bake order):");
  for (const image of description.images) {
    lines.push(
      `  ${image.name}`,
      `    driver:  ${image.driver}${image.driverPackage ? ` (${image.driverPackage})` : ""}`,
      `    source:  ${image.from ? `from ${image.from}` : JSON.stringify(image.source)}`,
    );
    lines.push(`    provision:${image.provision.length === 0 ? " (none)" : ""}`);
    for (const step of image.steps) lines.push(`      - ${step.name}${step.package ? ` (${step.package})` : ""}`);
    if (image.tags.length) lines.push(`    tags:    ${image.tags.join(", ")}`);
    if (image.checks) lines.push(`    verify:  ${image.checks} checks`);
  }
  if (description.notices.length > 0) lines.push("", "notes:", ...description.notices.map((notice) => `  ${formatDiagnostic(notice)}`));
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

function describeProject(project: Project) {
  return redactDeep(
    {
      file: project.file,
      variables: Object.fromEntries(
        Object.entries(project.variables).map(([name, variable]) => [name, variable.sensitive ? "<sensitive>" : variable.value]),
      ),
      images: project.images.map((image) => ({
        name: image.name,
        driver: image.driverName,
        /** `name@version` of the package the driver resolved to; undefined for a plugin of the project. */
        driverPackage: image.driverPackage ? packageId(image.driverPackage) : undefined,
        from: image.from,
        source: image.from ? undefined : (image.driverOptions as { source?: unknown }).source,
        provision: image.provision.map((step) => step.name),
        steps: image.provision.map((step) => ({ name: step.name, package: step.package ? packageId(step.package) : undefined })),
        tags: image.tags,
        checks: image.verify.reduce((count, scenario) => count + scenario.checks.length, 0),
      })),
      notices: project.notices,
    },
    project.redact,
  );
}

function packageId(found: { name: string; version: string }): string {
  return `${found.name}@${found.version}`;
}

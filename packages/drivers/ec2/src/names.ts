import { KilnError, type BakeContext } from "@kiln/core";

/** Single braces: `{{ name }}` is the bake file's variable syntax, resolved before the driver sees the options. */
const DEFAULT_NAME = "kiln-{image}-{date}";
/** EC2's AMI name rule: 3–128 characters of letters, digits and ( ) [ ] . / - ' @ _ and space. */
const AMI_NAME = /^[A-Za-z0-9()[\]./\-'@_ ]{3,128}$/;

/** Renders ami_name once per bake, at launch: {image}, {timestamp} (Unix seconds), {date} (YYYYMMDD-hhmmss, UTC), {run_id}. */
export function amiName(template: string | undefined, ctx: Pick<BakeContext, "image" | "runId">, now = new Date()): string {
  const values: Record<string, string> = {
    image: ctx.image,
    timestamp: String(Math.floor(now.getTime() / 1000)),
    date: now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15),
    run_id: ctx.runId,
  };
  const name = (template ?? DEFAULT_NAME).replace(/\{(\w+)\}/g, (whole, key: string) => {
    const value = values[key];
    if (value === undefined)
      throw new KilnError("E_CONFIG", `ami_name: unknown placeholder ${whole}`, { hint: "use {image}, {timestamp}, {date} or {run_id}" });
    return value;
  });
  if (!AMI_NAME.test(name)) {
    throw new KilnError("E_CONFIG", `ami_name "${name}" is not a valid AMI name`, {
      hint: "3–128 characters: letters, digits, spaces and ( ) [ ] . / - ' @ _",
    });
  }
  return name;
}

/** Why an ami_name template can never render a valid name (checked at validation, with a typical image name and run id). */
export function amiNameProblem(template: string): string | undefined {
  try {
    amiName(template, { image: "image", runId: "20261127-1200-abcdef" });
    return undefined;
  } catch (error) {
    // Reported at the ami_name key already: the message need not name it again.
    return error instanceof KilnError ? `${error.message.replace(/^ami_name:? /, "")} (${error.hint})` : String(error);
  }
}

import { z } from "zod";
import { isDurationString } from "../duration.js";

/** Names of images, variables and steps: usable in tags, labels and file names. */
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const durationSchema = z
  .union([z.number().nonnegative(), z.string().refine(isDurationString, { message: 'expected a duration like "30s" or "5m"' })])
  .describe('Seconds, or a duration such as "30s", "5m", "1h30m".');

export const variableSchema = z
  .strictObject({
    default: z.union([z.string(), z.number(), z.boolean()]).optional().describe("Value used when none is given."),
    sensitive: z
      .boolean()
      .optional()
      .describe("Secret: redacted from output, events, errors, labels and the manifest; enters the bake key only as a hash."),
    description: z.string().optional().describe("What the variable is for."),
  })
  .describe("A variable, set with --var name=value, --var-file, or the KILN_VAR_<name> environment variable.");

/** Keys Kiln itself reads from a provision step's options; the rest go to the provisioner. */
export const commonStepSchema = z.object({
  timeout: durationSchema.optional().describe("Fail the step when it runs longer than this."),
  pause_before: durationSchema.optional().describe("Wait this long before the step starts."),
  max_retries: z.number().int().nonnegative().optional().describe("Run the step again up to this many times when it fails."),
});
export const COMMON_STEP_KEYS = Object.keys(commonStepSchema.shape) as (keyof typeof commonStepSchema.shape)[];

export const provisionStepSchema = z
  .record(z.string(), z.record(z.string(), z.unknown()))
  .refine((step) => Object.keys(step).length === 1, {
    message: "a provision step names exactly one provisioner, e.g. `- shell: { inline: [...] }`",
  })
  .describe("One provisioner and its options, e.g. `shell: { inline: [...] }`.");

export const commandCheckSchema = z.strictObject({
  command: z.union([
    z.string(),
    z.strictObject({
      run: z.string().describe("Shell command run on the verify machine."),
      exit_code: z.number().int().optional().describe("Expected exit code. Default 0."),
      stdout_contains: z.string().optional().describe("Text that stdout must contain."),
    }),
  ]),
  name: z.string().optional(),
});

export const fileCheckSchema = z.strictObject({
  file: z.strictObject({
    path: z.string().describe("Absolute path on the verify machine."),
    contains: z.string().optional().describe("Text the file must contain."),
  }),
  name: z.string().optional(),
});

export const verifySchema = z
  .strictObject({
    runtime: z
      .strictObject({
        env: z.record(z.string(), z.string()).optional().describe("Environment variables given to the machine at start."),
        files: z.record(z.string(), z.string()).optional().describe("Files written before start: path → content."),
      })
      .optional()
      .describe("Runtime configuration injected the way a deployment would."),
    checks: z.array(z.union([commandCheckSchema, fileCheckSchema])).default([]),
    timeout: durationSchema.optional(),
  })
  .describe("Checks run on a fresh machine launched from the new artefact.");

/** Kiln's own keys on an image. Every other key is a driver option, validated by the driver's schema. */
export const imageSchema = z
  .looseObject({
    driver: z.string().min(1).describe("Driver that bakes this image: docker, ec2, lxc, vagrant, or a package name."),
    from: z.string().optional().describe("Bake on top of this other image's artefact (baked first)."),
    description: z.string().optional(),
    provision: z.array(provisionStepSchema).default([]).describe("Provisioners, run in order on the build machine."),
    verify: verifySchema.optional(),
    tags: z.array(z.string()).default([]).describe('Tags given to the artefact, e.g. "acme/web:{{ version }}".'),
    labels: z.record(z.string(), z.string()).default({}).describe("Extra labels put on the artefact."),
    timeout: durationSchema.optional().describe("Fail the whole bake of this image when it runs longer than this."),
  })
  .describe("An image to bake.");

export const bakeFileSchema = z
  .strictObject({
    $schema: z.string().optional(),
    variables: z.record(z.string().regex(VARIABLE_NAME, "variable names are letters, digits and _"), variableSchema).default({}),
    images: z
      .record(z.string().regex(NAME, "image names are letters, digits, _, . and -"), imageSchema)
      .refine((images) => Object.keys(images).length > 0, { message: "no images: add at least one under `images:`" }),
  })
  .describe("A Kiln bake file.");

export type VariableDefinition = z.infer<typeof variableSchema>;
export type ImageDefinition = z.infer<typeof imageSchema>;
export type VerifyDefinition = z.infer<typeof verifySchema>;
export type BakeFile = z.infer<typeof bakeFileSchema>;
/** The bake file as written (before defaults), for `defineConfig`. */
export type BakeFileInput = z.input<typeof bakeFileSchema>;

/** Kiln's own keys on an image; the driver gets the rest. */
export const IMAGE_KEYS = new Set(Object.keys(imageSchema.shape));

import { z } from "zod";
import { durationSchema, timeoutSchema } from "./durations.js";
import { verifySchema } from "./verify-schema.js";

export { durationSchema, timeoutSchema };

/** Names of images, variables and steps: usable in tags, labels and file names. */
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** A name matching `pattern` (at most 128 characters), and never `__proto__`, which a JavaScript object cannot hold as a key. */
const nameOf = (pattern: RegExp, what: string) =>
  z
    .string()
    .regex(pattern, `${what} names are ${pattern === VARIABLE_NAME ? "letters, digits and _" : "letters, digits, _, . and -"}, at most 128`)
    .refine((name) => name !== "__proto__", `"__proto__" is reserved: choose another name`);

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
  timeout: timeoutSchema.optional().describe("Fail the step when it runs longer than this."),
  pause_before: durationSchema.optional().describe("Wait this long before the step starts."),
  max_retries: z
    .number()
    .int()
    .min(0)
    .max(100)
    .optional()
    .describe("Run the step again up to this many times (at most 100) when it fails."),
});
export const COMMON_STEP_KEYS = Object.keys(commonStepSchema.shape) as (keyof typeof commonStepSchema.shape)[];

export const provisionStepSchema = z
  .record(z.string(), z.unknown())
  .superRefine((step, context) => {
    const keys = Object.keys(step);
    if (keys.length !== 1) {
      context.addIssue({
        code: "custom",
        message: "a provision step names exactly one provisioner, e.g. `- shell: { inline: [...] }`, or `- use: <steps name>`",
      });
      return;
    }
    const [name] = keys as [string];
    const value = step[name];
    if (name === "use" && typeof value !== "string")
      context.addIssue({ code: "custom", path: [name], message: "use: takes the name of a list under steps:" });
    if (name !== "use" && (value === null || typeof value !== "object" || Array.isArray(value))) {
      context.addIssue({ code: "custom", path: [name], message: `the options of ${name} must be a map, e.g. ${name}: { … }` });
    }
  })
  .describe("One provisioner and its options, e.g. `shell: { inline: [...] }`; or `use: <name>` to insert a list from `steps:`.");

/**
 * What must be supplied at boot and never baked: paths that may not exist in the image, and variables whose values may not
 * appear in files written while provisioning. The list form mixes both (absolute paths, and variable names).
 */
export const runtimeOnlySchema = z
  .union([
    z.array(z.string().min(1)),
    z.strictObject({
      paths: z.array(z.string().startsWith("/")).optional().describe("Paths that must not exist in the image."),
      variables: z.array(z.string()).optional().describe("Variables whose values must not appear in files written while provisioning."),
      scan: z
        .array(z.string().startsWith("/"))
        .optional()
        .describe("Directories scanned for those values. Default: /etc /srv /opt /home /root /var/www /usr/local/etc /app."),
    }),
  ])
  .describe("Runtime configuration that must be injected at boot, not baked into the image.");

/** Kiln's own keys on an image. Every other key is a driver option, validated by the driver's schema. */
export const imageSchema = z
  .looseObject({
    driver: z.string().min(1).describe("Driver that bakes this image: docker, ec2, lxc, vagrant, or a package name."),
    from: z.string().optional().describe("Bake on top of this other image's artefact (baked first)."),
    description: z.string().optional(),
    provision: z.array(provisionStepSchema).default([]).describe("Provisioners, run in order on the build machine."),
    verify: verifySchema.optional(),
    runtime_only: runtimeOnlySchema.optional(),
    tags: z.array(z.string()).default([]).describe('Tags given to the artefact, e.g. "acme/web:{{ version }}".'),
    labels: z.record(z.string(), z.string()).default({}).describe("Extra labels put on the artefact."),
    timeout: timeoutSchema.optional().describe("Fail the whole bake of this image when it runs longer than this."),
    allow_host_paths: z
      .array(z.string().startsWith("/", "an absolute directory of this host"))
      .optional()
      .describe("Host directories outside the project this image's steps may read and write (sources, scripts, downloads)."),
    host_access: z
      .boolean()
      .optional()
      .describe("Allow what gives the build machine access to this host: mounted host paths, the engine's socket, extra privileges."),
  })
  .describe("An image to bake.");

/** Plugins of this project: code in its own files, declared here by name so `driver:` and steps can use them. */
export const pluginsSchema = z
  .strictObject({
    drivers: z.record(nameOf(NAME, "plugin"), z.string().min(1)).default({}),
    provisioners: z.record(nameOf(NAME, "plugin"), z.string().min(1)).default({}),
  })
  .describe(
    "Drivers and provisioners that are files of this project (paths relative to the bake file). They run code: kiln validate does not load them.",
  );

export const bakeFileSchema = z
  .strictObject({
    $schema: z.string().optional(),
    plugins: pluginsSchema.optional(),
    project: z
      .string()
      .regex(NAME, "project names are letters, digits, _, . and -, at most 128")
      .optional()
      .describe("Name that scopes this file's artefacts (lineage, plan, prune). Default: the bake file's directory name."),
    variables: z.record(nameOf(VARIABLE_NAME, "variable"), variableSchema).default({}),
    defaults: z
      .record(nameOf(NAME, "driver"), z.record(z.string(), z.unknown()))
      .default({})
      .describe(
        "Driver options every image of that driver gets unless it sets them itself, per driver name, e.g. docker: { registry: … }.",
      ),
    steps: z
      .record(nameOf(NAME, "step list"), z.array(provisionStepSchema))
      .default({})
      .describe("Named provision step lists that images insert with `- use: <name>` (composition without inheritance)."),
    images: z
      .record(nameOf(NAME, "image"), imageSchema)
      .refine((images) => Object.keys(images).length > 0, { message: "no images: add at least one under `images:`" }),
  })
  .describe("A Kiln bake file.");

export type VariableDefinition = z.infer<typeof variableSchema>;
export type ImageDefinition = z.infer<typeof imageSchema>;
export type BakeFile = z.infer<typeof bakeFileSchema>;
/** The bake file as written (before defaults), for `defineConfig`. */
export type BakeFileInput = z.input<typeof bakeFileSchema>;

/** Kiln's own keys on an image; the driver gets the rest. */
export const IMAGE_KEYS = new Set(Object.keys(imageSchema.shape));

import { z } from "zod";
import { patternProblem } from "../verify/pattern.js";
import { durationSchema, timeoutSchema } from "./durations.js";

/** A regular expression in RE2 syntax, checked when the bake file is validated rather than when the check runs. */
const pattern = z.string().superRefine((value, context) => {
  const problem = patternProblem(value);
  if (problem) context.addIssue({ code: "custom", message: problem });
});

/** Options every check takes. */
const common = {
  name: z.string().optional().describe("Name shown in output and events. Default: derived from the check."),
  within: durationSchema
    .optional()
    .describe("Keep retrying until the check passes or this much time has passed (for things that come up asynchronously)."),
};

const textMatch = {
  contains: z.string().optional().describe("Text that must appear."),
  matches: pattern.optional().describe("Regular expression (RE2 syntax) that must match."),
};

export const commandCheckSchema = z.strictObject({
  ...common,
  command: z.union([
    z.string(),
    z.strictObject({
      run: z.string().describe("Shell command run on the verify machine."),
      exit_code: z.number().int().min(0).max(255).optional().describe("Expected exit code (0–255). Default 0."),
      stdout_contains: z.string().optional(),
      stdout_matches: pattern.optional(),
      stderr_contains: z.string().optional(),
      stderr_matches: pattern.optional(),
      user: z.string().optional().describe("Run as this user."),
    }),
  ]),
});

export const fileCheckSchema = z.strictObject({
  ...common,
  file: z.union([
    z.string(),
    z.strictObject({
      path: z.string().startsWith("/").describe("Absolute path on the verify machine."),
      exists: z.boolean().optional().describe("false: the file must NOT exist. Default true."),
      mode: z
        .string()
        .regex(/^0?[0-7]{3,4}$/, 'write the mode in octal, e.g. "0644"')
        .optional(),
      owner: z.string().optional().describe('"user" or "user:group".'),
      ...textMatch,
    }),
  ]),
});

export const portCheckSchema = z.strictObject({
  ...common,
  port: z.union([
    z.number().int().min(1).max(65535),
    z.strictObject({
      port: z.number().int().min(1).max(65535),
      protocol: z.enum(["tcp", "udp"]).optional().describe('Default "tcp".'),
      listening: z.boolean().optional().describe("false: nothing may listen there. Default true."),
      from_host: z.boolean().optional().describe("Also connect from the host (where the driver publishes ports). Default false."),
    }),
  ]),
});

export const httpCheckSchema = z.strictObject({
  ...common,
  http: z.strictObject({
    port: z.number().int().min(1).max(65535),
    path: z.string().startsWith("/").optional().describe('Default "/".'),
    from: z
      .enum(["host", "machine"])
      .optional()
      .describe('Where the request comes from. Default "host" where the driver allows, else "machine".'),
    status: z.number().int().min(100).max(599).optional().describe("Expected status (100–599). Default 200."),
    body_contains: z.string().optional(),
    body_matches: pattern.optional(),
  }),
});

export const processCheckSchema = z.strictObject({
  ...common,
  process: z.union([z.string(), z.strictObject({ name: z.string(), running: z.boolean().optional() })]),
});

export const serviceCheckSchema = z.strictObject({
  ...common,
  service: z.union([z.string(), z.strictObject({ name: z.string(), running: z.boolean().optional() })]),
});

export const packageCheckSchema = z.strictObject({
  ...common,
  package: z.union([
    z.string(),
    z.strictObject({
      name: z.string(),
      installed: z.boolean().optional().describe("false: the package must NOT be installed. Default true."),
      version: z.string().optional().describe('Exact version, or a pattern with * (e.g. "1.22.*").'),
    }),
  ]),
});

export const userCheckSchema = z.strictObject({
  ...common,
  user: z.union([
    z.string(),
    z.strictObject({
      name: z.string(),
      exists: z.boolean().optional().describe("false: the user must NOT exist. Default true."),
      uid: z.number().int().min(0).max(4294967294).optional(),
      groups: z.array(z.string()).optional().describe("Groups the user must belong to."),
      shell: z.string().optional(),
      home: z.string().optional(),
    }),
  ]),
});

export const checkSchema = z.union([
  commandCheckSchema,
  fileCheckSchema,
  portCheckSchema,
  httpCheckSchema,
  processCheckSchema,
  serviceCheckSchema,
  packageCheckSchema,
  userCheckSchema,
]);

export const runtimeSchema = z
  .strictObject({
    env: z.record(z.string(), z.string()).optional().describe("Environment variables given to the machine at start."),
    files: z
      .record(
        z.string(),
        z.union([
          z.string(),
          z.strictObject({
            content: z.string(),
            mode: z
              .string()
              .regex(/^0?[0-7]{3,4}$/)
              .optional(),
          }),
        ]),
      )
      .optional()
      .describe("Files written before start, e.g. /etc/default/myapp: path → content."),
    boot_script: z.string().optional().describe("Shell script run at boot before the image's own command (a configure-on-boot step)."),
    user_data: z.string().optional().describe("cloud-init user-data, for drivers whose machines run cloud-init (EC2, LXC)."),
  })
  .describe("Runtime configuration injected the way a deployment would.");

export const scenarioSchema = z.strictObject({
  name: z.string().optional().describe("Name of this start-up scenario in output."),
  runtime: runtimeSchema.optional(),
  checks: z.array(checkSchema).min(1),
  timeout: timeoutSchema.optional().describe("Fail verify when this scenario runs longer than this. Default 5m."),
});

/** One scenario, or several (the same image started with different runtime configuration). */
export const verifySchema = z
  .union([scenarioSchema, z.array(scenarioSchema).min(1)])
  .describe("Checks run on fresh machines launched from the new artefact, each with its runtime configuration.");

export type Check = z.infer<typeof checkSchema>;
export type RuntimeDefinition = z.infer<typeof runtimeSchema>;
export type VerifyScenario = z.infer<typeof scenarioSchema>;
export type VerifyDefinition = z.infer<typeof verifySchema>;

/** Kinds of check, in the order of {@link checkSchema}. */
export const CHECK_KINDS = ["command", "file", "port", "http", "process", "service", "package", "user"] as const;
export type CheckKind = (typeof CHECK_KINDS)[number];

export function checkKind(check: Check): CheckKind {
  return CHECK_KINDS.find((kind) => kind in check) as CheckKind;
}

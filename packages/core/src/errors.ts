/** Error codes. Input problems map to exit code 2, failed bakes to 1, interruption to 130. */
export type KilnErrorCode =
  | "E_CONFIG" // the bake file or a flag is wrong
  | "E_VARIABLE" // a variable is missing or malformed
  | "E_DRIVER_NOT_FOUND"
  | "E_PROVISIONER_NOT_FOUND"
  | "E_PLUGIN_SHAPE" // a package was found but does not export a driver/provisioner
  | "E_SOURCE" // the source image cannot be resolved
  | "E_LAUNCH"
  | "E_PROVISION"
  | "E_CAPTURE"
  | "E_VERIFY"
  | "E_RUNTIME_ONLY" // runtime configuration (a runtime-only path or a secret) was baked into the image
  | "E_TIMEOUT"
  | "E_CLEANUP"
  | "E_MISSING_TOOL" // a host tool (docker engine, debootstrap…) is missing
  | "E_INTERRUPTED"
  | "E_INTERNAL";

const INPUT_ERRORS = new Set<KilnErrorCode>(["E_CONFIG", "E_VARIABLE", "E_DRIVER_NOT_FOUND", "E_PROVISIONER_NOT_FOUND", "E_PLUGIN_SHAPE"]);

/** One problem found in a bake file, with its place. */
export interface Diagnostic {
  /** Path inside the bake file, e.g. `images.web.provision[1].shell.inline`. */
  path: string;
  message: string;
  /** How to fix it. */
  hint?: string;
  file?: string;
  line?: number;
  column?: number;
}

export interface KilnErrorOptions {
  hint?: string;
  cause?: unknown;
  diagnostics?: Diagnostic[];
  exitCode?: number;
}

/** The one error type Kiln throws. Library code throws it; only the CLI turns it into text and an exit code. */
export class KilnError extends Error {
  override readonly name = "KilnError";
  readonly code: KilnErrorCode;
  readonly hint: string | undefined;
  readonly diagnostics: Diagnostic[];
  readonly exitCode: number;

  constructor(code: KilnErrorCode, message: string, options: KilnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.diagnostics = options.diagnostics ?? [];
    this.exitCode = options.exitCode ?? exitCodeFor(code);
  }
}

export function exitCodeFor(code: KilnErrorCode): number {
  if (INPUT_ERRORS.has(code)) return 2;
  if (code === "E_INTERRUPTED") return 130;
  return 1;
}

export function isKilnError(error: unknown): error is KilnError {
  return error instanceof KilnError;
}

/** `file:line:col: path: message` — the form editors and CI logs link to. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.file ? `${d.file}${d.line ? `:${d.line}:${d.column ?? 1}` : ""}: ` : "";
  const path = d.path ? `${d.path}: ` : "";
  return `${where}${path}${d.message}${d.hint ? ` — ${d.hint}` : ""}`;
}

/** Wraps anything thrown into a KilnError, keeping KilnErrors as they are. */
export function toKilnError(error: unknown, code: KilnErrorCode, message?: string): KilnError {
  if (error instanceof KilnError) return error;
  const text = error instanceof Error ? error.message : String(error);
  return new KilnError(code, message ? `${message}: ${text}` : text, { cause: error });
}

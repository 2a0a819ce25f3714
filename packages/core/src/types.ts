import type { Readable } from "node:stream";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import type { KilnEvent, KilnEventInput } from "./events.js";

export type { StandardSchemaV1 };

/** What a driver resolved a source to: an immutable id that feeds the bake key. */
export interface SourceRef {
  /** Immutable identifier, e.g. a Docker image id (`sha256:…`) or an AMI id. */
  id: string;
  /** Digest that pins the content where the platform has one (registry digest, snapshot date…). */
  digest?: string;
  /** What the user asked for, for people: `debian:bookworm`, `debootstrap bookworm/minbase`. */
  description: string;
  /** Provenance of the source itself (e.g. debootstrap suite and mirror). */
  details?: Record<string, string>;
}

/** A baked image on some platform. */
export interface Artifact {
  /** Platform id: Docker image id, AMI id, … */
  id: string;
  driver: string;
  /** Image name in the bake file. */
  image: string;
  tags: string[];
  /** Provenance labels (`dev.kiln.*`) and any user labels. */
  labels: Record<string, string>;
  /** ISO time the artefact was created. */
  created?: string;
}

export interface ExecOptions {
  env?: Record<string, string>;
  user?: string;
  cwd?: string;
  stdin?: string | Buffer | Readable;
  /** Milliseconds; the command is abandoned and the call rejects with E_TIMEOUT. */
  timeout?: number;
  signal?: AbortSignal;
  onOutput?: (stream: "stdout" | "stderr", chunk: string) => void;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** How to reach a machine from outside Kiln: used by provisioners such as Ansible, and to tell users how to attach. */
export type Connection =
  | { kind: "docker"; container: string; host?: string }
  | { kind: "ssh"; host: string; port: number; user: string; privateKey: string }
  | { kind: "lxc"; name: string }
  | { kind: "local" };

/** A running build or verify machine. Disposing it destroys it; disposing twice is harmless. */
export interface Machine extends AsyncDisposable {
  readonly id: string;
  readonly connection: Connection;
  /** A string runs through `/bin/sh -c`; an array runs as argv. A non-zero exit code is returned, not thrown. */
  exec(cmd: string | string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * Copies a local file or directory onto the machine. A file lands exactly at `to`; a directory's contents land inside `to`
   * (created if missing). A stream is written as one file at `to`.
   */
  upload(from: string | Readable, to: string, options?: { mode?: number }): Promise<void>;
  /** Copies a file (to exactly `to`) or a directory's contents (into `to`) from the machine. */
  download(from: string, to: string): Promise<void>;
  /** Shell command a person can run to get a shell on this machine. */
  attachCommand(): string;
  /** Where a port of the machine is reachable from the host (only for ports asked for in `RuntimeInputs.ports`). */
  hostAddress?(port: number): Promise<{ host: string; port: number } | undefined>;
}

/** Runtime configuration injected when a machine starts from an artefact (the way a deployment would). */
export interface RuntimeInputs {
  /** Environment variables given to the machine at start. */
  env?: Record<string, string> | undefined;
  /** Files written before the machine's own start command runs: path → content and mode (octal, default 0644). */
  files?: Record<string, { content: string; mode?: number | undefined }> | undefined;
  /** Shell script run at boot, before the image's own start command (configure-on-boot). */
  bootScript?: string | undefined;
  /** cloud-init user-data, for drivers that declare `runtimeSupport.userData`. */
  userData?: string | undefined;
  /** Ports to make reachable from the host (see `Machine.hostAddress`), for drivers that declare `runtimeSupport.hostPorts`. */
  ports?: number[] | undefined;
}

/** Which runtime inputs a driver can inject; env and files are required of every driver. */
export interface RuntimeSupport {
  bootScript?: boolean;
  userData?: boolean;
  hostPorts?: boolean;
}

export interface CaptureTarget {
  /** Labels to put on the artefact: provenance and user labels. */
  labels: Record<string, string>;
  /** Tags to apply, e.g. `acme/web:1.4.2`. */
  tags: string[];
}

export interface ArtifactQuery {
  /** Every label must match; a value of `undefined` only requires the label to exist. */
  labels?: Record<string, string | undefined>;
  /** An artefact id or tag. */
  ref?: string;
}

/** A log line from a plugin. Text passes through the redactor before anyone sees it. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

export interface DeferOptions {
  /** `always` (default) runs on success and failure; `failure` only when the bake fails (e.g. delete a half-made artefact). */
  when?: "always" | "failure";
  /** Names the resource in messages if the cleanup fails, e.g. `container 3f2a…`. */
  resource?: string;
  /** A command a person can run to remove the resource by hand. */
  manualCommand?: string;
}

export interface VariableValue {
  value: string;
  sensitive: boolean;
}

/** Everything a plugin gets for one image's bake. */
export interface BakeContext {
  /** Unique id of this `kiln build` run; every resource carries it in `dev.kiln.build`. */
  readonly runId: string;
  /** Image name in the bake file. */
  readonly image: string;
  /** Directory relative paths in the bake file resolve from. */
  readonly cwd: string;
  readonly variables: Readonly<Record<string, VariableValue>>;
  /** The parent's artefact when the image is built `from:` another. */
  readonly parent: Artifact | undefined;
  /** `kiln plan`: resolve without creating anything; a source that would have to be built or pulled throws E_SOURCE. */
  readonly planning?: boolean;
  /** Aborted on Ctrl-C, on timeout, or when the bake fails elsewhere. */
  readonly signal: AbortSignal;
  /** Labels every resource created for this bake must carry. */
  readonly resourceLabels: Readonly<Record<string, string>>;
  readonly log: Logger;
  emit(event: KilnEventInput): void;
  /** Streams command output to the user, line by line (and redacted). Pass it as `onOutput` to `Machine.exec`. */
  output(stream: "stdout" | "stderr", chunk: string): void;
  /** Registers a cleanup; registered cleanups run in reverse order when the bake ends. Register before returning the resource. */
  defer(cleanup: () => PromiseLike<void> | void, options?: DeferOptions): void;
  /** Replaces every sensitive value in `text` with `<sensitive>`. */
  redact(text: string): string;
}

export interface DriverInit {
  /** Directory the bake file lives in. */
  cwd: string;
}

/** A driver turns a source into a running Machine and a Machine into an Artifact. */
export interface Driver<Opts = unknown> {
  readonly name: string;
  /** Validates the image's driver options (every key of the image other than Kiln's own). */
  readonly schema: StandardSchemaV1<unknown, Opts>;
  /** Runtime inputs beyond env and files that `launchArtifact` can inject. */
  readonly runtimeSupport?: RuntimeSupport;
  /** Resolves `opts.source` (or `ctx.parent` for `from:`) to an immutable id. Registers cleanups for anything it creates. */
  resolveSource(ctx: BakeContext, opts: Opts): Promise<SourceRef>;
  launch(ctx: BakeContext, source: SourceRef, opts: Opts): Promise<Machine>;
  capture(ctx: BakeContext, machine: Machine, target: CaptureTarget, opts: Opts): Promise<Artifact>;
  /** Starts a machine from an artefact the way a deployment would, for verification. */
  launchArtifact(ctx: BakeContext, artifact: Artifact, runtime: RuntimeInputs, opts: Opts): Promise<Machine>;
  /**
   * Artefacts matching the query. `opts` are the options of an image that uses this driver (where artefacts live: a region, an
   * endpoint); Kiln passes them whenever it knows the image.
   */
  findArtifacts(query: ArtifactQuery, opts?: Opts): Promise<Artifact[]>;
  /** Points a tag (a moving reference such as `acme/web:prod`) at the artefact. */
  tag(artifact: Artifact, tag: string, opts?: Opts): Promise<void>;
  remove(artifact: Artifact, opts?: Opts): Promise<void>;
}

export type DriverFactory<Opts = unknown> = (init: DriverInit) => Driver<Opts>;

export interface Provisioner<Opts = unknown> {
  readonly name: string;
  readonly schema: StandardSchemaV1<unknown, Opts>;
  /** Content that feeds the bake key: script text, file contents, playbooks. */
  fingerprint(ctx: BakeContext, opts: Opts): Promise<string>;
  run(ctx: BakeContext, machine: Machine, opts: Opts): Promise<void>;
}

export type ProvisionerFactory<Opts = unknown> = () => Provisioner<Opts>;

/** Identity helpers that give plugin authors type inference. */
export function defineDriver<Opts>(factory: DriverFactory<Opts>): DriverFactory<Opts> {
  return factory;
}

export function defineProvisioner<Opts>(factory: ProvisionerFactory<Opts>): ProvisionerFactory<Opts> {
  return factory;
}

export type { KilnEvent };

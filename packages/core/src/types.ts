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
  /** Files that make up the artefact, for platforms whose images are files (LXC rootfs tarballs, Vagrant boxes). */
  files?: ArtifactFile[];
  /**
   * Where the artefact is stored beyond the machine that made it, by content: `registry/repo@sha256:…` for a Docker image
   * pushed to a registry. Any machine can fetch it from there.
   */
  digests?: string[];
}

/** One file of a file-based artefact. */
export interface ArtifactFile {
  /** Absolute path on this machine. */
  path: string;
  /** What the file is: `tar`, `tar.gz`, `qcow2`, `box`, … */
  format: string;
  /** Bytes. */
  size: number;
  /** Hex sha256 of the content. */
  sha256: string;
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

/**
 * How to act as root when the connection's user is not root. Every connection kind states how root is reached: `docker`
 * (`docker exec -u root`), `lxc` (`lxc-attach` runs as root) and `chroot` (the host's root) reach it directly; `ssh` logs in
 * as `user` and becomes root through `become`, unless `user` is root.
 */
export interface Become {
  /** `sudo`: `sudo -n` (passwordless), as cloud images and Vagrant boxes set up their login user. */
  method: "sudo";
  /** The user to become: `root`. */
  user: string;
}

/** A container of a Docker engine. */
export interface DockerConnection {
  kind: "docker";
  /** Container id. */
  container: string;
  /** The engine, as `DOCKER_HOST` spells it: `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2376`, `ssh://user@host`. */
  host: string;
  /** TLS material for the engine (`DOCKER_CERT_PATH` with ca.pem, cert.pem, key.pem; `DOCKER_TLS_VERIFY`). */
  tls?: { certPath: string; verify: boolean };
  /** User that commands run as unless one is named (`exec_user`, else the image's `USER`, else root). Root: `docker exec -u root`. */
  user: string;
}

/** A machine reached over SSH. */
export interface SshConnection {
  kind: "ssh";
  host: string;
  port: number;
  /** Login user. */
  user: string;
  /** Private key text (OpenSSH or PEM). Secret: never print it; write it to a 0600 file for tools that need a path. */
  privateKey: string;
  /** The host key the machine presented, pinned (`ssh-ed25519 AAAA…`): put it in a known_hosts file, never disable checking. */
  hostKey: string;
  /** How the login user becomes root; absent when `user` is root. */
  become?: Become;
}

/** An LXC container: `lxc-attach -P <lxcpath> -n <name>` (as root). */
export interface LxcConnection {
  kind: "lxc";
  name: string;
  /** The container's lxcpath, e.g. `/var/lib/lxc`. */
  lxcpath: string;
}

/** A directory tree entered with `chroot <path>` (as root on the host). */
export interface ChrootConnection {
  kind: "chroot";
  path: string;
}

/**
 * How to reach a machine from outside Kiln, exactly as Kiln does: tools such as Ansible build their inventory from it, and a
 * person attaches with it. The conformance suite proves it by running a command as root through the platform's own CLI.
 */
export type Connection = DockerConnection | SshConnection | LxcConnection | ChrootConnection;
export type ConnectionKind = Connection["kind"];

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
  /**
   * The tags this artefact will get, e.g. `acme/web:1.4.2`, for drivers whose capture needs a name. Do not apply them: core tags
   * through `Driver.tag` only after verify passes, so an unverified artefact never carries a tag.
   */
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
  /**
   * A command a person can run to remove the resource by hand. A function is asked when the command is shown, so it can name
   * an id learnt after registration (the cleanup is registered before the call that creates the resource).
   */
  manualCommand?: string | (() => string);
  /**
   * How long the cleanup may take, all retries included, in ms; then it is reported as failed (with `resource` and
   * `manualCommand`) and the bake ends. Default: the run's cleanup timeout (2 minutes). The cleanup's signal aborts then.
   */
  timeoutMs?: number;
}

/**
 * Removes something a bake created. The signal aborts when the cleanup's time is up: stop waiting then (the failure is
 * reported with the resource and the command to remove it by hand).
 */
export type Cleanup = (signal: AbortSignal) => PromiseLike<void> | void;

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
  /** `kiln build --on-error=abort`: a failed bake keeps its build machine to inspect, so do not remove it before the bake ends. */
  readonly keepsMachineOnFailure?: boolean;
  /** Labels every resource created for this bake must carry. */
  readonly resourceLabels: Readonly<Record<string, string>>;
  readonly log: Logger;
  emit(event: KilnEventInput): void;
  /** Streams command output to the user, line by line (and redacted). Pass it as `onOutput` to `Machine.exec`. */
  output(stream: "stdout" | "stderr", chunk: string): void;
  /**
   * Registers a cleanup; registered cleanups run in reverse order when the bake ends. Register it as soon as the resource may
   * exist (before the call that creates it, when it can be found by a unique name): a cleanup registered after the bake has
   * unwound (a step that returned after Ctrl-C) runs at once.
   */
  defer(cleanup: Cleanup, options?: DeferOptions): void;
  /** Replaces every sensitive value in `text` with `<sensitive>`. */
  redact(text: string): string;
  /**
   * The real path of a host file an option names (relative to the bake file's directory), refused with E_CONFIG when it is
   * outside the project (after symlinks, as they are now) and not allowed. Plugins read and write host files only through it.
   */
  hostPath(path: string, access?: "read" | "write"): Promise<string>;
}

/** What Kiln gives a plugin factory. */
export interface PluginInit {
  /** Directory the bake file lives in. */
  cwd: string;
  /**
   * This plugin's own directory for state that must survive runs (e.g. a local artefact store): `$KILN_STATE_DIR/<plugin>`, else
   * `$XDG_STATE_HOME/kiln/<plugin>`, else `~/.local/state/kiln/<plugin>`. Not created until the plugin writes to it.
   */
  stateDir: string;
  /** This plugin's directory for caches that can be rebuilt (base root file systems, downloads): `$XDG_CACHE_HOME/kiln/<plugin>`. */
  cacheDir: string;
  /** Log lines outside a bake (loading, fleet commands); inside a bake use `ctx.log`. */
  log: Logger;
}

export type DriverInit = PluginInit;

/** What a fleet call (`findArtifacts`, `tag`, `remove`) gets besides its arguments: `kiln prune` may remove fifty images. */
export interface FleetCall {
  /** Aborted on Ctrl-C: stop between platform calls. */
  signal: AbortSignal;
  log: Logger;
}

/** A problem `preflight` found, reported by `kiln validate` at the plugin's options (or at `path` inside them). */
export interface PreflightProblem {
  /** e.g. `lxc-create not found`. */
  message: string;
  /** How to fix it, e.g. `install it: apt-get install -y lxc`. */
  hint?: string;
  /** Where inside the plugin's options the problem is, e.g. `["source"]`. Default: the plugin's name. */
  path?: (string | number)[];
}

/**
 * An option whose value leaves the bake where others can read it — the image's config, a command line. Kiln refuses a
 * sensitive variable's value there, at validation, with the option's position.
 */
export interface ExposedOption {
  /** Path of the option, e.g. `["changes"]`, `["execute_command"]`. */
  path: readonly string[];
  /** Where the value would be seen, for the message: "the image's config (docker inspect shows it)". */
  where: string;
}

/**
 * A file or directory of this host an option names. Kiln checks it is inside the project — after symlinks — unless the image
 * (`allow_host_paths`) or the run (`--allow-path`) allows where it is, when the bake file is validated and again when
 * `ctx.hostPath()` resolves it: a bake file is untrusted input until someone builds it.
 */
export interface HostPath {
  /** Path of the option in the plugin's options, e.g. `["source"]`, `["scripts", 1]`. */
  path: readonly (string | number)[];
  /** The path as written (relative to the bake file's directory). */
  value: string;
  /** `read` (a source, a script) or `write` (a download destination). */
  access: "read" | "write";
}

/**
 * Access to this host an option grants the build machine: a mounted host path, the Docker socket, privileged mode. Refused
 * unless the image says `host_access: true`; `kiln validate` and `kiln inspect` list it either way.
 */
export interface HostAccess {
  path: readonly (string | number)[];
  /** What it gives, for people: "mounts /var/run/docker.sock read-write (control of the Docker engine)". */
  what: string;
}

/** The driver a provisioner step would run on, for `Provisioner.preflight`. */
export interface PreflightTarget {
  /** Driver name as written in the bake file. */
  driver: string;
  /** The connection kinds the driver's machines have; undefined when the driver does not say. */
  connectionKinds: readonly ConnectionKind[] | undefined;
}

/** A driver turns a source into a running Machine and a Machine into an Artifact. */
export interface Driver<Opts = unknown> {
  readonly name: string;
  /** Validates the image's driver options (every key of the image other than Kiln's own). */
  readonly schema: StandardSchemaV1<unknown, Opts>;
  /** Runtime inputs beyond env and files that `launchArtifact` can inject. */
  readonly runtimeSupport?: RuntimeSupport;
  /** The `Machine.connection` kinds this driver's machines have, so a provisioner can refuse a driver it cannot reach. */
  readonly connectionKinds?: readonly ConnectionKind[];
  /** Options baked into the artefact's metadata or shown on command lines: no secret may go there. */
  readonly exposedOptions?: readonly ExposedOption[];
  /** The host files the options name (a source tarball, a user-data file); read them through `ctx.hostPath()`. */
  hostPaths?(opts: Opts): HostPath[];
  /**
   * The options that decide what the artefact contains, for its bake key (default: all of them). Where the artefact is stored
   * and how to log in there do not: moving to another registry must not rebake the fleet.
   */
  bakeKeyOptions?(opts: Opts): unknown;
  /** The host access the options give the build machine (volumes, privileged mode). */
  hostAccess?(opts: Opts): HostAccess[];
  /** Why the platform would refuse `tag` as a reference (undefined: fine), so `kiln validate` says so before a bake. */
  checkTag?(tag: string): string | undefined;
  /**
   * Checks the host without changing anything (run by `kiln validate`, plan and build before anything starts): a missing tool,
   * missing privileges. Must not contact services or run code from the bake file.
   */
  preflight?(opts: Opts): Promise<PreflightProblem[]> | PreflightProblem[];
  /** Resolves `opts.source` (or `ctx.parent` for `from:`) to an immutable id. Registers cleanups for anything it creates. */
  resolveSource(ctx: BakeContext, opts: Opts): Promise<SourceRef>;
  launch(ctx: BakeContext, source: SourceRef, opts: Opts): Promise<Machine>;
  /** Saves the machine as an artefact. The machine is not used afterwards (only disposed), so a driver may stop it first. */
  capture(ctx: BakeContext, machine: Machine, target: CaptureTarget, opts: Opts): Promise<Artifact>;
  /** Starts a machine from an artefact the way a deployment would, for verification. */
  launchArtifact(ctx: BakeContext, artifact: Artifact, runtime: RuntimeInputs, opts: Opts): Promise<Machine>;
  /**
   * Artefacts matching the query. `opts` are the options of an image that uses this driver (where artefacts live: a region, an
   * endpoint); Kiln passes them whenever it knows the image.
   */
  findArtifacts(query: ArtifactQuery, opts?: Opts, call?: FleetCall): Promise<Artifact[]>;
  /** Points a tag (a moving reference such as `acme/web:prod`) at the artefact, moving it from any other. */
  tag(artifact: Artifact, tag: string, opts?: Opts, call?: FleetCall): Promise<void>;
  /** Removes the artefact; removing one that is already gone is not an error. */
  remove(artifact: Artifact, opts?: Opts, call?: FleetCall): Promise<void>;
  /**
   * Makes a verified (or cached) artefact available beyond this machine, e.g. pushes it to the registry the options name, and
   * returns it with its `digests`; returns undefined (at once, not a promise) when the options name nowhere to publish, so no
   * `publish` step is shown. Called after the tag step, for baked and cached artefacts alike, so it must be idempotent.
   * Drivers whose artefacts are account-wide already (AMIs) leave it out.
   */
  publish?(ctx: BakeContext, artifact: Artifact, opts: Opts): Promise<Artifact> | undefined;
}

export type DriverFactory<Opts = unknown> = (init: DriverInit) => Driver<Opts>;

export interface Provisioner<Opts = unknown> {
  readonly name: string;
  readonly schema: StandardSchemaV1<unknown, Opts>;
  /** Content that feeds the bake key: script text, file contents, playbooks. */
  fingerprint(ctx: BakeContext, opts: Opts): Promise<string>;
  run(ctx: BakeContext, machine: Machine, opts: Opts): Promise<void>;
  /** Options shown on command lines or left on the machine: no secret may go there. */
  readonly exposedOptions?: readonly ExposedOption[];
  /** The host files the options name (sources, scripts, download destinations); reach them through `ctx.hostPath()`. */
  hostPaths?(opts: Opts): HostPath[];
  /** Like `Driver.preflight`, and told which driver the step would run on (to refuse a pairing it cannot work with). */
  preflight?(opts: Opts, target: PreflightTarget): Promise<PreflightProblem[]> | PreflightProblem[];
}

export type ProvisionerFactory<Opts = unknown> = (init: PluginInit) => Provisioner<Opts>;

/**
 * The plugin contract's version. `defineDriver`/`defineProvisioner` stamp it on the factory, so Kiln can refuse, with a clear
 * message, a plugin built against a core that speaks another version of the contract.
 */
export const PLUGIN_API_VERSION = 2;
/** Where the stamp lives on a factory. */
export const PLUGIN_API_KEY = "kilnPluginApi";

/** Identity helpers that give plugin authors type inference, and stamp the plugin API version on the factory. */
export function defineDriver<Opts>(factory: DriverFactory<Opts>): DriverFactory<Opts> {
  return Object.assign(factory, { [PLUGIN_API_KEY]: PLUGIN_API_VERSION });
}

export function defineProvisioner<Opts>(factory: ProvisionerFactory<Opts>): ProvisionerFactory<Opts> {
  return Object.assign(factory, { [PLUGIN_API_KEY]: PLUGIN_API_VERSION });
}

export type { KilnEvent };

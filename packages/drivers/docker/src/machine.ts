import { readFile, stat } from "node:fs/promises";
import { posix } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import type Docker from "dockerode";
import tarStream from "tar-stream";
import { KilnError, type DockerConnection, type ExecOptions, type ExecResult, type Machine } from "@kiln/core";
import { extractDownload, packTree } from "@kiln/core/kit";
import { engineEndpoint } from "./engine.js";

/** A running container driven through the Docker API: exec, and file copies as tar streams. */
export class DockerMachine implements Machine {
  readonly connection: DockerConnection;
  private disposed: Promise<void> | undefined;

  constructor(
    private readonly docker: Docker,
    readonly id: string,
    /** `exec_user` when set; otherwise commands run as the container's configured user (`imageUser`). */
    private readonly defaultUser: string | undefined,
    connection: Omit<DockerConnection, "kind" | "container">,
    /** Image the container was started from; its config is the base of the committed image's config. */
    readonly sourceImage?: string,
  ) {
    this.connection = { kind: "docker", container: id, ...connection };
  }

  /** Wraps a started container, reading the user its commands default to (`exec_user`, else the image's `USER`, else root). */
  static async of(docker: Docker, id: string, defaultUser: string | undefined, sourceImage?: string): Promise<DockerMachine> {
    const [{ Config }, engine] = await Promise.all([docker.getContainer(id).inspect(), engineEndpoint(docker)]);
    return new DockerMachine(docker, id, defaultUser, { ...engine, user: defaultUser || Config.User || "root" }, sourceImage);
  }

  private get container(): Docker.Container {
    return this.docker.getContainer(this.id);
  }

  attachCommand(): string {
    const host = this.connection.host === "unix:///var/run/docker.sock" ? "" : `-H ${this.connection.host} `;
    return `docker ${host}exec -it ${this.id} /bin/sh`;
  }

  /** Ports asked for at launch are published on 127.0.0.1 at a port the engine picks. */
  async hostAddress(port: number): Promise<{ host: string; port: number } | undefined> {
    const info = await this.container.inspect();
    if (!info.State.Running) throw await this.notRunning();
    const binding = info.NetworkSettings.Ports?.[`${port}/tcp`]?.[0];
    return binding?.HostPort ? { host: binding.HostIp || "127.0.0.1", port: Number(binding.HostPort) } : undefined;
  }

  async exec(cmd: string | string[], options: ExecOptions = {}): Promise<ExecResult> {
    const user = options.user ?? this.defaultUser;
    const exec = await this.container
      .exec({
        Cmd: typeof cmd === "string" ? ["/bin/sh", "-c", cmd] : cmd,
        AttachStdout: true,
        AttachStderr: true,
        AttachStdin: options.stdin !== undefined,
        Env: Object.entries(options.env ?? {}).map(([name, value]) => `${name}=${value}`),
        ...(user ? { User: user } : {}),
        ...(options.cwd ? { WorkingDir: options.cwd } : {}),
      })
      .catch((error: unknown) => this.explainNotRunning(error));
    const stream = await exec.start({ hijack: options.stdin !== undefined, stdin: options.stdin !== undefined });
    const output = { stdout: "", stderr: "" };
    const sink = (name: "stdout" | "stderr") => {
      const pass = new PassThrough();
      pass.on("data", (chunk: Buffer) => {
        const text = chunk.toString();
        output[name] += text;
        options.onOutput?.(name, text);
      });
      return pass;
    };
    this.docker.modem.demuxStream(stream, sink("stdout"), sink("stderr"));
    if (options.stdin !== undefined) writeStdin(stream, options.stdin);
    const finished = new Promise<void>((resolve, reject) => {
      stream.on("end", resolve);
      stream.on("close", resolve);
      stream.on("error", reject);
    });
    await this.untilDoneOrStopped(finished, exec, options);
    const info = await exec.inspect();
    // 126 is also what the runtime answers when the container stopped between the exec's creation and its start.
    if (info.ExitCode === 126 && !(await this.container.inspect()).State.Running) throw await this.notRunning();
    return { exitCode: info.ExitCode ?? -1, ...output };
  }

  /** A container whose own command ended cannot run more commands: say so, with its exit code and last log lines. */
  private async explainNotRunning(error: unknown): Promise<never> {
    if ((error as { statusCode?: number }).statusCode !== 409) throw error;
    throw await this.notRunning(error);
  }

  private async notRunning(cause?: unknown): Promise<KilnError> {
    const state = await this.container.inspect().then(
      (info) => info.State,
      () => undefined,
    );
    const logs = await this.container.logs({ stdout: true, stderr: true, tail: 5 }).then(
      (buffer) => demuxedText(buffer),
      () => "",
    );
    return new KilnError(
      "E_LAUNCH",
      `container ${this.id.slice(0, 12)} is not running: its command exited with code ${state?.ExitCode ?? "?"}${logs ? `; last output:\n${logs}` : ""}`,
      {
        hint: "a verify machine runs the image's own command, which must keep running (a service); one-shot images need a long-running cmd to be verified",
        ...(cause ? { cause } : {}),
      },
    );
  }

  /** Waits for the command; on timeout or abort, kills it (best effort) and rejects. */
  private async untilDoneOrStopped(finished: Promise<void>, exec: Docker.Exec, options: ExecOptions): Promise<void> {
    const stops: Promise<never>[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (options.timeout !== undefined) {
      stops.push(
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new KilnError("E_TIMEOUT", `command timed out after ${options.timeout}ms`)), options.timeout);
        }),
      );
    }
    const signal = options.signal;
    let onAbort: (() => void) | undefined;
    if (signal) {
      stops.push(
        new Promise((_, reject) => {
          onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new KilnError("E_INTERRUPTED", "command aborted"));
          if (signal.aborted) onAbort();
          else signal.addEventListener("abort", onAbort, { once: true });
        }),
      );
    }
    try {
      await Promise.race([finished, ...stops]);
    } catch (error) {
      await killExec(exec);
      throw error;
    } finally {
      clearTimeout(timer);
      // The bake's signal lives long and sees many commands: leave no listener behind.
      if (signal && onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  async upload(from: string | Readable, to: string, options: { mode?: number } = {}): Promise<void> {
    if (typeof from !== "string") {
      const chunks: Buffer[] = [];
      for await (const chunk of from) chunks.push(Buffer.from(chunk as Buffer));
      return this.putFile(Buffer.concat(chunks), to, options.mode ?? 0o644);
    }
    const info = await stat(from);
    if (info.isDirectory()) {
      // A tree can be large: check that its destination exists (a cheap stat) instead of sending it twice after a 404.
      if (!(await this.exists(to))) await this.mkdirs(to);
      const { archive, packed } = packTree(from);
      await this.container.putArchive(archive, { path: to });
      await packed;
    } else {
      await this.putFile(await readFile(from), to, options.mode ?? info.mode & 0o7777);
    }
  }

  private async putFile(content: Buffer, to: string, mode: number): Promise<void> {
    await this.putArchive(posix.dirname(to), () => {
      const pack = tarStream.pack();
      pack.entry({ name: posix.basename(to), mode, uid: 0, gid: 0, mtime: new Date() }, content);
      pack.finalize();
      return pack as unknown as NodeJS.ReadableStream;
    });
  }

  /** Extracts a tar stream into `dir`, creating `dir` only when the engine says it is missing (saves an exec per upload). */
  private async putArchive(dir: string, archive: () => NodeJS.ReadableStream): Promise<void> {
    try {
      await this.container.putArchive(archive(), { path: dir });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
      await this.mkdirs(dir);
      await this.container.putArchive(archive(), { path: dir });
    }
  }

  private exists(path: string): Promise<boolean> {
    return this.container.infoArchive({ path }).then(
      () => true,
      (error: unknown) => ((error as { statusCode?: number }).statusCode === 404 ? false : Promise.reject(error)),
    );
  }

  private async mkdirs(path: string): Promise<void> {
    const result = await this.exec(["mkdir", "-p", path], { user: "root" });
    if (result.exitCode !== 0) throw new KilnError("E_PROVISION", `cannot create ${path} in container ${this.id}: ${result.stderr.trim()}`);
  }

  async download(from: string, to: string): Promise<void> {
    const probe = await this.exec(["test", "-d", from]);
    let archive: NodeJS.ReadableStream;
    try {
      archive = await this.container.getArchive({ path: from });
    } catch (error) {
      throw new KilnError("E_PROVISION", `cannot download ${from} from container ${this.id}: ${(error as Error).message}`);
    }
    // The archive's first path component is the file or directory itself.
    await extractDownload(archive as Readable, from, to, probe.exitCode === 0);
  }

  /** Removes the container and its anonymous volumes. Safe to call again. */
  [Symbol.asyncDispose](): Promise<void> {
    // Shared by concurrent callers; forgotten when it fails, so a retry asks the engine again.
    this.disposed ??= removeContainer(this.docker, this.id).catch((error: unknown) => {
      this.disposed = undefined;
      throw error;
    });
    return this.disposed;
  }
}

export async function removeContainer(docker: Docker, id: string): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true, v: true });
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    // 404: already gone; 409: removal already in progress (a concurrent cleanup).
    if (status !== 404 && status !== 409) throw error;
  }
}

/** Docker's multiplexed log frames (8-byte header each) → text. */
function demuxedText(buffer: Buffer): string {
  let text = "";
  for (let offset = 0; offset + 8 <= buffer.length; offset += 8 + buffer.readUInt32BE(offset + 4)) {
    text += buffer.subarray(offset + 8, offset + 8 + buffer.readUInt32BE(offset + 4)).toString();
  }
  return text.trimEnd();
}

function writeStdin(stream: NodeJS.ReadWriteStream, stdin: string | Buffer | Readable): void {
  if (typeof stdin === "string" || Buffer.isBuffer(stdin)) stream.end(stdin);
  else stdin.pipe(stream);
}

/**
 * Docker has no API to stop an exec; its process is on this host when the engine is local, so signal it directly. The exec'd
 * process leads its own process group: kill the group, or `sh -c "sleep 600"` would leave its child running in the container.
 */
async function killExec(exec: Docker.Exec): Promise<void> {
  try {
    const { Pid } = await exec.inspect();
    if (Pid > 0) {
      try {
        process.kill(-Pid, "SIGKILL");
      } catch {
        process.kill(Pid, "SIGKILL");
      }
    }
  } catch {
    // Remote engine or already finished: the container's removal ends it.
  }
}

import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Docker from "dockerode";
import { ACTIONS } from "./actions/registry.js";
import { CLOUD_INIT_DOCKER_IMAGE, ensureBaseImage, ensureCloudInitImage } from "./base-image.js";
import { removeRunContainers } from "./container.js";
import { removeCommittedImages } from "./docker-images.js";
import type { EmulatorContext, Transition } from "./context.js";
import { Ec2Error } from "./errors.js";
import { FaultPlan, type FaultRule, type FaultSpec } from "./faults.js";
import { terminateInstance } from "./lifecycle.js";
import { QueryParams } from "./query.js";
import { requestRegion } from "./region.js";
import { type EmulatorResources, listResources } from "./resources.js";
import { seedImages } from "./seed.js";
import { ACCOUNT_ID, Ec2State } from "./state.js";
import { errorXml, responseXml } from "./xml.js";

export interface EmulatorOptions {
  /** Address to listen on. Default "127.0.0.1". */
  host?: string;
  /** Port to listen on. Default 0 (any free port; read it from `endpoint`). */
  port?: number;
  /** Docker engine that runs the instances. Default: the local engine from the environment. */
  docker?: Docker;
  /** Faults active from the start; `nth` counts from the first call. */
  faults?: FaultRule[];
  /** Delay of each asynchronous state transition (pending → running, stopping → stopped, shutting-down → terminated, an AMI's pending → available), in ms. Default 1000. */
  transitionDelayMs?: number;
  /** Per-transition delays in ms, overriding `transitionDelayMs` for `boot`, `stop`, `terminate` or `image`. */
  transitionDelays?: Partial<Record<Transition, number>>;
  /** How long DescribeInstances by id answers NotFound for a just-launched instance, in ms. Default 0. */
  eventualConsistencyMs?: number;
  /** Docker image behind the seeded base AMI. Default: kiln-ec2-emulator/debian12:bookworm, built on first use. */
  baseImage?: string;
  /**
   * Docker image behind the seeded cloud-init AMI. Default: kiln-ec2-emulator/debian12-cloud-init:bookworm, built (once per machine)
   * when an instance of that AMI first boots, so emulators that never launch it never build it.
   */
  cloudInitImage?: string;
  /** Value of `dev.kiln.build` on the emulator's containers. Default: a fresh id. */
  runId?: string;
}

export interface Emulator extends AsyncDisposable {
  /** `http://host:port`: pass it as the SDK client's `endpoint`. */
  endpoint: string;
  runId: string;
  /**
   * Terminates every instance, deregisters own AMIs and deletes their snapshots, removes every container and committed image of
   * this run, and closes the server. Safe to call twice.
   */
  stop(): Promise<void>;
  /** Live resources (for leak assertions); also served as JSON at `GET /_kiln/resources`. */
  resources(): EmulatorResources;
  /** Makes the nth next call of an action fail with this error. */
  injectFault(action: string, fault: FaultSpec): void;
  /** Makes the next `calls` calls of an action answer 503 RequestLimitExceeded. */
  throttle(action: string, calls: number): void;
  /** Forgets every pending fault and throttle. */
  clearFaults(): void;
  /** How often each action was called. */
  callCounts(): Record<string, number>;
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const docker = options.docker ?? new Docker();
  const state = new Ec2State();
  const cloudInitImage = options.cloudInitImage ?? CLOUD_INIT_DOCKER_IMAGE;
  seedImages(state, { base: options.baseImage ?? (await ensureBaseImage(docker)), cloudInit: cloudInitImage });
  const lazyImages = new Map<string, () => Promise<unknown>>();
  if (options.cloudInitImage === undefined) lazyImages.set(CLOUD_INIT_DOCKER_IMAGE, () => ensureCloudInitImage(docker));
  const ctx: EmulatorContext = {
    state,
    docker,
    runId: options.runId ?? `ec2-emulator-${randomBytes(4).toString("hex")}`,
    transitionDelays: transitionDelays(options),
    eventualConsistencyMs: options.eventualConsistencyMs ?? 0,
    background: new Set(),
    committedImages: new Set(),
    lazyImages,
  };
  const faults = new FaultPlan();
  for (const { action, ...spec } of options.faults ?? []) faults.inject(action, spec);

  const server = createServer((request, response) => {
    handle(ctx, faults, request, response).catch((error: unknown) =>
      send(response, 500, errorXml("InternalError", String(error), randomUUID())),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      for (const instance of state.instances.values()) terminateInstance(ctx, instance);
      while (ctx.background.size > 0) await Promise.all(ctx.background);
      // Like instances, own AMIs and their snapshots hold host resources (committed images), so stop() ends them too.
      for (const image of [...state.images.values()]) if (image.ownerId === ACCOUNT_ID) state.images.delete(image.imageId);
      state.snapshots.clear();
      for (const volume of state.volumes()) state.deletedVolumes.add(volume.device.volumeId);
      await removeRunContainers(docker, ctx.runId);
      await removeCommittedImages(ctx);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    })();
    return stopping;
  };
  return {
    endpoint: `http://${host}:${address.port}`,
    runId: ctx.runId,
    stop,
    resources: () => listResources(state),
    injectFault: (action, fault) => faults.inject(action, fault),
    throttle: (action, calls) => faults.throttle(action, calls),
    clearFaults: () => faults.clear(),
    callCounts: () => faults.counts(),
    [Symbol.asyncDispose]: stop,
  };
}

function transitionDelays(options: EmulatorOptions): Record<Transition, number> {
  const fallback = options.transitionDelayMs ?? 1000;
  const given = options.transitionDelays ?? {};
  return {
    boot: given.boot ?? fallback,
    stop: given.stop ?? fallback,
    terminate: given.terminate ?? fallback,
    image: given.image ?? fallback,
  };
}

async function handle(ctx: EmulatorContext, faults: FaultPlan, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? "/", "http://emulator");
  if (request.method === "GET" && url.pathname === "/_kiln/resources") {
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(listResources(ctx.state)));
    return;
  }
  const requestId = randomUUID();
  const body = await readBody(request);
  // Parameters may come in the query string (GET) or the form body (POST, what the SDK sends); the body wins on a clash.
  const params = QueryParams.parse(`${url.searchParams.toString()}&${body}`);
  const action = params.get("Action");
  try {
    // Signatures are not checked (any credentials work), but an unsigned request is refused as EC2 would.
    if (!request.headers.authorization && !params.get("X-Amz-Signature"))
      throw new Ec2Error("AuthFailure", "AWS was not able to validate the provided access credentials", 401);
    if (!action) throw new Ec2Error("MissingAction", "The request must contain the parameter Action");
    const handler = ACTIONS[action];
    if (!handler) throw new Ec2Error("InvalidAction", `The action ${action} is not valid for this web service.`);
    const fault = faults.onCall(action);
    if (fault) throw fault;
    const region = requestRegion(request.headers.authorization, params.get("X-Amz-Credential"));
    send(response, 200, responseXml(action, requestId, await handler({ ...ctx, region }, params)));
  } catch (error) {
    if (error instanceof Ec2Error) send(response, error.status, errorXml(error.code, error.message, requestId));
    else send(response, 500, errorXml("InternalError", error instanceof Error ? error.message : String(error), requestId));
  }
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

function send(response: ServerResponse, status: number, xml: string): void {
  if (response.headersSent) return;
  response.writeHead(status, { "content-type": "text/xml;charset=UTF-8" }).end(xml);
}

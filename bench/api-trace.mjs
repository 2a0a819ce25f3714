#!/usr/bin/env node
// A recording proxy in front of the Docker engine's socket: point a client at it (DOCKER_HOST=unix://…) and it lists the engine
// API calls the client made — by method and path pattern, with count and time — and the time the client spent outside them
// (before its first call, between calls, after the last). It answers "where does a bake's time go": in the engine or in the client.
// As a module: startApiTrace() (used by `node bench/run.mjs --trace`). Alone: node bench/api-trace.mjs -- <command> [args…]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The engine's socket as the clients would find it: DOCKER_HOST when it is a unix socket, else the default. */
export function engineSocket(env = process.env) {
  const host = env.DOCKER_HOST;
  if (!host) return "/var/run/docker.sock";
  if (host.startsWith("unix://")) return host.slice("unix://".length);
  throw new Error(`api-trace: DOCKER_HOST=${host} is not a unix socket; the recording proxy only sits in front of one`);
}

// First path segments after which a segment is a name or id, unless it is one of the collection's own verbs.
const COLLECTION_VERBS = {
  containers: ["json", "create", "prune"],
  exec: [],
  networks: ["create", "prune"],
  volumes: ["create", "prune"],
  plugins: ["pull", "create", "privileges"],
  services: ["create"],
  nodes: [],
  secrets: ["create"],
  configs: ["create"],
  tasks: [],
};
const IMAGE_VERBS = ["json", "create", "load", "search", "prune", "get"];
const IMAGE_SUFFIXES = ["json", "tag", "history", "push", "get"];

/** `/v1.41/containers/3f2a…/start?x=1` → `/containers/{id}/start`; image names may contain slashes and colons. */
export function endpointPattern(url) {
  const path = decodeURIComponent(new URL(url, "http://engine").pathname).replace(/^\/v\d+(\.\d+)?(?=\/)/, "");
  const [collection = "", ...rest] = path.split("/").filter(Boolean);
  if (collection === "images" && rest.length > 0) {
    if (rest.length === 1 && IMAGE_VERBS.includes(rest[0])) return `/images/${rest[0]}`;
    const last = rest.at(-1);
    return rest.length > 1 && IMAGE_SUFFIXES.includes(last) ? `/images/{name}/${last}` : "/images/{name}";
  }
  if (collection === "distribution") return "/distribution/{name}/json";
  const verbs = COLLECTION_VERBS[collection];
  if (verbs && rest.length > 0) {
    if (rest.length === 1 && verbs.includes(rest[0])) return `/${collection}/${rest[0]}`;
    return ["", collection, "{id}", ...rest.slice(1)].join("/");
  }
  return `/${[collection, ...rest].join("/")}`;
}

/**
 * Starts the proxy on a new socket in a temp dir. `begin()` starts a recording (clears the calls, notes the time), `end()`
 * returns its summary. Calls are timed from their request's arrival to the end of their response (for an upgraded stream
 * such as an exec's attach: until both sides closed).
 */
export async function startApiTrace({ upstream = engineSocket() } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "kiln-bench-trace-"));
  const socketPath = join(dir, "docker.sock");
  const agent = new http.Agent({ keepAlive: true });
  let calls = [];
  let begunAt = performance.now();
  const open = (request) => {
    const call = { endpoint: `${request.method} ${endpointPattern(request.url)}`, start: performance.now(), end: undefined };
    calls.push(call);
    // Called when the call ends, with the engine's status when known: failed calls are listed apart (a 404, then a retry).
    return (status) => {
      call.status ??= status;
      call.end ??= performance.now();
    };
  };
  // Connection headers are hop-by-hop: the engine's "Connection: close" (sent when it answers before reading the whole
  // body) is about its socket to the proxy. Passed on, Node would close the client's socket at once and the client, still
  // sending, would fail with EPIPE, where the engine itself lingers and lets it read the answer.
  const endToEndHeaders = (rawHeaders) => {
    const kept = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if (!["connection", "keep-alive"].includes(rawHeaders[i].toLowerCase())) kept.push(rawHeaders[i], rawHeaders[i + 1]);
    }
    return kept;
  };
  const headersFor = (request) => {
    const headers = { ...request.headers };
    delete headers.expect; // the proxy already answered the client's 100-continue
    return headers;
  };

  const server = http.createServer({ requestTimeout: 0 }, (request, response) => {
    const done = open(request);
    let answered = false;
    const forward = http.request(
      { socketPath: upstream, agent, method: request.method, path: request.url, headers: headersFor(request) },
      (answer) => {
        // The body is re-framed by Node (content-length kept, chunked re-chunked): every HTTP client reads it the same.
        response.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEndHeaders(answer.rawHeaders));
        response.flushHeaders(); // streaming endpoints (wait, events, build) send headers long before their body
        answer.pipe(response);
        answer.on("end", () => {
          answered = true;
          done(answer.statusCode);
        });
      },
    );
    // The engine may answer before it has read the whole body (PUT /archive: 404, no such directory) and close. The client
    // must still get that answer, as it would from the engine: the rest of its body is read and dropped.
    const drain = () => {
      request.unpipe(forward);
      request.resume();
    };
    forward.on("error", (error) => {
      done();
      drain();
      if (!response.headersSent) response.writeHead(502).end(`api-trace: ${error.message}`);
      else if (!answered) response.destroy(error);
    });
    response.on("close", () => {
      done();
      if (!response.writableFinished)
        forward.destroy(); // the client went away mid-answer
      else if (!request.complete) {
        drain();
        forward.destroy();
      }
    });
    request.pipe(forward);
  });

  // An upgraded call (exec start, attach): the request body (its JSON options) must reach the engine before it answers 101,
  // so read exactly content-length bytes first; what follows is the raw stream, forwarded once both sides are connected.
  server.on("upgrade", (request, client, head) => {
    const done = open(request);
    const length = Number(request.headers["content-length"] ?? 0);
    let buffered = head;
    const send = () => {
      client.off("data", collect);
      client.pause();
      const body = buffered.subarray(0, length);
      const early = buffered.subarray(length);
      const forward = http.request({
        socketPath: upstream,
        agent: false,
        method: request.method,
        path: request.url,
        headers: headersFor(request),
      });
      forward.on("upgrade", (answer, engine, engineHead) => {
        const lines = [`HTTP/1.1 ${answer.statusCode} ${answer.statusMessage}`];
        for (let i = 0; i < answer.rawHeaders.length; i += 2) lines.push(`${answer.rawHeaders[i]}: ${answer.rawHeaders[i + 1]}`);
        client.write(`${lines.join("\r\n")}\r\n\r\n`);
        if (engineHead.length > 0) client.write(engineHead);
        if (early.length > 0) engine.write(early);
        let closed = 0;
        const closeOne = () => {
          closed += 1;
          if (closed === 2) done();
        };
        engine.on("close", closeOne);
        client.on("close", closeOne);
        engine.on("error", () => client.destroy());
        client.on("error", () => engine.destroy());
        engine.pipe(client);
        client.pipe(engine);
        client.resume();
      });
      // The engine refused the upgrade (404: no such exec, say): pass its answer on and close.
      forward.on("response", (answer) => {
        const chunks = [];
        answer.on("data", (chunk) => chunks.push(chunk));
        answer.on("end", () => {
          const payload = Buffer.concat(chunks);
          const type = answer.headers["content-type"] ?? "text/plain";
          client.end(
            `HTTP/1.1 ${answer.statusCode} ${answer.statusMessage}\r\nContent-Type: ${type}\r\nContent-Length: ${payload.length}\r\n` +
              `Connection: close\r\n\r\n${payload}`,
          );
          done(answer.statusCode);
        });
      });
      forward.on("error", () => {
        client.destroy();
        done();
      });
      forward.end(body);
    };
    const collect = (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= length) send();
    };
    if (buffered.length >= length) send();
    else client.on("data", collect);
  });

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, resolve);
  });
  return {
    host: `unix://${socketPath}`,
    /** Starts a new recording. */
    begin() {
      calls = [];
      begunAt = performance.now();
    },
    /** The recording's summary; `startedAt`/`endedAt` (performance.now() times) bound the traced run when known. */
    end(startedAt = begunAt, endedAt = performance.now()) {
      return summarizeTrace(calls, startedAt, endedAt);
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Calls grouped by endpoint, and the time outside them: before the first, between (no call in flight) and after the last. */
export function summarizeTrace(calls, startedAt, endedAt) {
  // A call begun after the traced run ended is someone else's (a clean-up after it, say).
  const finished = calls
    .filter((call) => call.start <= endedAt)
    .map((call) => ({ ...call, end: Math.min(call.end ?? endedAt, endedAt) }))
    .sort((a, b) => a.start - b.start);
  const byEndpoint = new Map();
  for (const call of finished) {
    const endpoint = call.status >= 400 ? `${call.endpoint} → ${call.status}` : call.endpoint;
    const entry = byEndpoint.get(endpoint) ?? { endpoint, count: 0, totalMs: 0 };
    entry.count += 1;
    entry.totalMs += call.end - call.start;
    byEndpoint.set(endpoint, entry);
  }
  let betweenMs = 0;
  let reach = finished[0]?.start ?? endedAt;
  for (const call of finished) {
    if (call.start > reach) betweenMs += call.start - reach;
    reach = Math.max(reach, call.end);
  }
  const first = finished[0]?.start ?? endedAt;
  return {
    wallMs: endedAt - startedAt,
    calls: finished.length,
    endpoints: [...byEndpoint.values()].sort((a, b) => b.totalMs - a.totalMs),
    beforeFirstMs: first - startedAt,
    betweenMs,
    inCallsMs: reach - first - betweenMs,
    afterLastMs: finished.length > 0 ? endedAt - reach : 0,
  };
}

/** The summary as indented text lines. */
export function formatTrace(summary, indent = "    ") {
  const ms = (value) => `${value.toFixed(0).padStart(6)} ms`;
  const lines = [`${indent}${"calls".padStart(5)} ${"total".padStart(9)}  endpoint`];
  for (const entry of summary.endpoints) lines.push(`${indent}${String(entry.count).padStart(5)} ${ms(entry.totalMs)}  ${entry.endpoint}`);
  lines.push(
    `${indent}${summary.calls} calls; wall ${ms(summary.wallMs).trim()}: before the first call ${ms(summary.beforeFirstMs).trim()}, ` +
      `in calls ${ms(summary.inCallsMs).trim()}, between calls ${ms(summary.betweenMs).trim()}, after the last ${ms(summary.afterLastMs).trim()}`,
  );
  return lines;
}

// Alone: run one command through the proxy and print what it asked the engine.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const command = process.argv.slice(2).filter((arg, index) => index > 0 || arg !== "--");
  if (command.length === 0) {
    process.stderr.write("usage: node bench/api-trace.mjs -- <command> [args…]   (the command is pointed at the proxy by DOCKER_HOST)\n");
    process.exit(2);
  }
  const trace = await startApiTrace();
  trace.begin();
  const child = spawn(command[0], command.slice(1), { stdio: "inherit", env: { ...process.env, DOCKER_HOST: trace.host } });
  const forward = (signal) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const code = await new Promise((resolve) => child.on("close", (status, signal) => resolve(status ?? (signal ? 130 : 1))));
  const summary = trace.end();
  await trace.close();
  process.stderr.write(`\nDocker API calls of: ${command.join(" ")}\n${formatTrace(summary).join("\n")}\n`);
  process.exit(code);
}

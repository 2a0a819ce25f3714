import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { homedir } from "node:os";
import { join } from "node:path";
import { KilnError } from "@kiln/core";

/** A registry login: what `docker login` stores, or the `registry_auth` option (from variables marked sensitive). */
export interface RegistryAuth {
  username: string;
  password: string;
}

export interface Manifest {
  /** `sha256:…` of the manifest's bytes: the artefact's address in the registry. */
  digest: string;
  mediaType: string;
  body: Buffer;
  /** The image config's digest: the image id every engine that pulls it gives it. */
  config: string;
}

/** Docker's image manifest and OCI's, in that order of preference: what `docker push` writes. */
const MANIFEST_TYPES = ["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"];

/**
 * A small client of the OCI distribution API (what Docker's `registry:2`, Harbor, ECR, GHCR, … speak), for what the engine's own
 * API cannot do: look a tag up, list a repository's tags, read an image's labels, point a tag at a manifest and delete by digest,
 * all without pulling. Pushes and pulls go through the engine.
 */
export class RegistryClient {
  private scheme: Promise<"https" | "http"> | undefined;
  private readonly tokens = new Map<string, string>();

  constructor(
    /** `host[:port]`, as in an image reference. */
    readonly host: string,
    private readonly auth: RegistryAuth | undefined,
  ) {}

  /** The manifest a tag or digest names, or undefined when the registry has none. */
  async manifest(repository: string, reference: string): Promise<Manifest | undefined> {
    const response = await this.request("GET", repository, `manifests/${reference}`, { accept: MANIFEST_TYPES.join(", ") });
    if (response.status === 404) return undefined;
    this.ensureOk(response, `read ${repository}:${reference}`);
    const parsed = JSON.parse(response.body.toString("utf8")) as { mediaType?: string; config?: { digest?: string } };
    const digest = String(response.headers["docker-content-digest"] ?? "") || `sha256:${await sha256(response.body)}`;
    const mediaType = parsed.mediaType ?? String(response.headers["content-type"] ?? MANIFEST_TYPES[0]);
    if (!parsed.config?.digest) throw new KilnError("E_SOURCE", `registry ${this.host}: ${repository}:${reference} is not a single image`);
    return { digest, mediaType, body: response.body, config: parsed.config.digest };
  }

  /** The image config blob (labels, creation time), parsed. */
  async config(repository: string, digest: string): Promise<{ created?: string; config?: { Labels?: Record<string, string> } }> {
    const response = await this.request("GET", repository, `blobs/${digest}`, {});
    this.ensureOk(response, `read the config of ${repository}@${digest}`);
    return JSON.parse(response.body.toString("utf8"));
  }

  /** Every tag of a repository (none when it does not exist yet). */
  async tags(repository: string): Promise<string[]> {
    const tags: string[] = [];
    for (let path: string | undefined = "tags/list?n=1000"; path; ) {
      const response = await this.request("GET", repository, path, {});
      if (response.status === 404) return tags;
      this.ensureOk(response, `list the tags of ${repository}`);
      tags.push(...((JSON.parse(response.body.toString("utf8")) as { tags?: string[] | null }).tags ?? []));
      // Pagination as the distribution spec gives it: `Link: </v2/<name>/tags/list?n=…&last=…>; rel="next"`.
      const next = /<\/v2\/[^>]*?\/(tags\/list\?[^>]*)>;\s*rel="next"/.exec(String(response.headers.link ?? ""));
      path = next?.[1];
    }
    return tags;
  }

  /** Points `tag` at a manifest the repository already holds: a tag move costs one small request, no layer is sent. */
  async putManifest(repository: string, tag: string, manifest: Manifest): Promise<void> {
    const response = await this.request("PUT", repository, `manifests/${tag}`, {
      contentType: manifest.mediaType,
      body: manifest.body,
    });
    this.ensureOk(response, `tag ${repository}:${tag}`);
  }

  /** Deletes a manifest (and with it every tag on it). False when the registry does not allow deletes. */
  async deleteManifest(repository: string, digest: string): Promise<boolean> {
    const response = await this.request("DELETE", repository, `manifests/${digest}`, {});
    if (response.status === 404) return true;
    if (response.status === 405 || response.status === 403) return false;
    this.ensureOk(response, `delete ${repository}@${digest}`);
    return true;
  }

  private ensureOk(response: HttpResponse, what: string): void {
    if (response.status >= 200 && response.status < 300) return;
    const detail = response.body.toString("utf8").slice(0, 300).trim();
    const login = response.status === 401 || response.status === 403;
    throw new KilnError("E_SOURCE", `registry ${this.host}: cannot ${what}: HTTP ${response.status}${detail ? ` ${detail}` : ""}`, {
      hint: login
        ? `log in first (docker login ${this.host}), or give registry_auth from variables marked sensitive`
        : "check that the registry answers and the option `registry` names it",
    });
  }

  /** One API call, answering the registry's auth challenge (Basic, or a Bearer token for the call's scope) once. */
  private async request(method: string, repository: string, path: string, options: RequestOptions): Promise<HttpResponse> {
    const scope = `repository:${repository}:${method === "GET" || method === "HEAD" ? "pull" : "pull,push,delete"}`;
    const url = async () => `${await this.baseUrl()}/v2/${repository}/${path}`;
    const token = this.tokens.get(scope);
    const first = await httpRequest(method, await url(), { ...options, ...(token ? { authorization: token } : {}) }, this.host);
    if (first.status !== 401) return first;
    const authorization = await this.answerChallenge(String(first.headers["www-authenticate"] ?? ""), scope);
    if (!authorization) return first;
    this.tokens.set(scope, authorization);
    return httpRequest(method, await url(), { ...options, authorization }, this.host);
  }

  private async answerChallenge(challenge: string, scope: string): Promise<string | undefined> {
    const basic = this.auth ? `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString("base64")}` : undefined;
    if (/^basic/i.test(challenge)) return basic;
    if (!/^bearer/i.test(challenge)) return undefined;
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((match) => [match[1], match[2]]));
    if (!params.realm) return undefined;
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set("service", params.service);
    tokenUrl.searchParams.set("scope", scope);
    const response = await httpRequest("GET", tokenUrl.toString(), basic ? { authorization: basic } : {}, this.host);
    if (response.status !== 200) return undefined;
    const body = JSON.parse(response.body.toString("utf8")) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    return token ? `Bearer ${token}` : undefined;
  }

  /** https, as Docker does; a loopback registry (insecure to Docker by default) may also be plain http or self-signed. */
  private baseUrl(): Promise<string> {
    this.scheme ??= (async () => {
      if (!isLoopback(this.host)) return "https" as const;
      const answers = await httpRequest("GET", `https://${this.host}/v2/`, {}, this.host).then(
        () => true,
        () => false,
      );
      return answers ? ("https" as const) : ("http" as const);
    })();
    return this.scheme.then((scheme) => `${scheme}://${this.host}`);
  }
}

/** Docker's own login for a registry: the `auths` entry of config.json, or its credential helper. */
export async function dockerLogin(host: string): Promise<RegistryAuth | undefined> {
  const dir = process.env.DOCKER_CONFIG ?? join(homedir(), ".docker");
  const text = await readFile(join(dir, "config.json"), "utf8").catch(() => undefined);
  if (!text) return undefined;
  const config = JSON.parse(text) as {
    auths?: Record<string, { auth?: string; username?: string; password?: string }>;
    credHelpers?: Record<string, string>;
    credsStore?: string;
  };
  const helper = config.credHelpers?.[host] ?? config.credsStore;
  if (helper) {
    const found = await credentialHelper(helper, host);
    if (found) return found;
  }
  const entry = config.auths?.[host] ?? config.auths?.[`https://${host}`];
  if (entry?.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return entry?.username && entry.password ? { username: entry.username, password: entry.password } : undefined;
}

/** `docker-credential-<helper> get`, the protocol Docker's credential helpers speak: the host on stdin, JSON out. */
function credentialHelper(helper: string, host: string): Promise<RegistryAuth | undefined> {
  return new Promise((resolve) => {
    const child = execFile(`docker-credential-${helper}`, ["get"], { timeout: 30_000 }, (error, stdout) => {
      if (error) return resolve(undefined);
      const found = JSON.parse(stdout) as { Username?: string; Secret?: string };
      resolve(found.Username && found.Secret ? { username: found.Username, password: found.Secret } : undefined);
    });
    child.stdin?.end(host);
  });
}

interface RequestOptions {
  accept?: string;
  contentType?: string;
  body?: Buffer;
  authorization?: string;
}

interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

async function httpRequest(method: string, url: string, options: RequestOptions, registryHost: string): Promise<HttpResponse> {
  const target = new URL(url);
  const client = target.protocol === "https:" ? await import("node:https") : await import("node:http");
  // Docker's per-registry CA (/etc/docker/certs.d/<host>/ca.crt) is trusted here too; a loopback registry is not verified,
  // as the engine treats 127.0.0.0/8 registries as insecure.
  const ca = target.protocol === "https:" ? await readFile(`/etc/docker/certs.d/${registryHost}/ca.crt`).catch(() => undefined) : undefined;
  const headers: Record<string, string> = {
    ...(options.accept ? { accept: options.accept } : {}),
    ...(options.contentType ? { "content-type": options.contentType } : {}),
    ...(options.authorization ? { authorization: options.authorization } : {}),
    ...(options.body ? { "content-length": String(options.body.length) } : {}),
  };
  return new Promise((resolve, reject) => {
    const request = client.request(
      target,
      { method, headers, timeout: 60_000, ...(ca ? { ca } : {}), ...(isLoopback(target.host) && !ca ? { rejectUnauthorized: false } : {}) },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
        response.on("error", reject);
      },
    );
    request.on("timeout", () => request.destroy(new Error(`no answer from ${target.host} within 60 s`)));
    request.on("error", reject);
    request.end(options.body);
  });
}

export function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, "");
  return name === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(name) || name === "[::1]";
}

async function sha256(body: Buffer): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("sha256").update(body).digest("hex");
}

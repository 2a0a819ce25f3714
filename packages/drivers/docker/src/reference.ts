/** Docker's reference grammar (github.com/distribution/reference), so `kiln validate` refuses what the engine would. */
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = new RegExp(`^${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const IMAGE_ID = /^(?:sha256:)?[a-f0-9]{12,64}$/;

/**
 * Why Docker would refuse `reference` as an image name (`repo[:tag]`, with `@digest` when `digest` is allowed), or
 * undefined. With `id`, an image id (`sha256:…` or its hex prefix) is accepted too.
 */
export function referenceProblem(reference: string, allow: { digest?: boolean; id?: boolean } = {}): string | undefined {
  if (allow.id && IMAGE_ID.test(reference)) return undefined;
  let rest = reference;
  const at = rest.indexOf("@");
  if (at >= 0) {
    if (!allow.digest) return "a tag cannot carry a digest (@sha256:…)";
    if (!DIGEST.test(rest.slice(at + 1))) return `"${rest.slice(at + 1)}" is not a digest (sha256: and 64 hex digits)`;
    rest = rest.slice(0, at);
  }
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    const tag = rest.slice(colon + 1);
    if (!TAG.test(tag)) return `tag "${tag}" must be letters, digits, _, . and - (at most 128, not starting with . or -)`;
    rest = rest.slice(0, colon);
  }
  if (rest.length === 0) return "the repository name is empty";
  if (rest.length > 255) return "the repository name is longer than 255 characters";
  const components = rest.split("/");
  // Docker reads the first component as a registry only when it has a dot or a port, or is localhost.
  const first = components[0] as string;
  const isDomain = components.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost");
  if (isDomain && !DOMAIN.test(first)) return `"${first}" is not a registry host[:port]`;
  for (const component of isDomain ? components.slice(1) : components) {
    if (!PATH_COMPONENT.test(component)) {
      return `"${component}" must be lowercase letters and digits, separated by ., _, __ or - (Docker refuses it)`;
    }
  }
  return undefined;
}

/** Instructions `docker commit --change` accepts. */
const CHANGE_INSTRUCTIONS = ["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR"];

/** Why Docker would refuse a Dockerfile line given as a commit change, or undefined. */
export function changeProblem(line: string): string | undefined {
  const [instruction = "", ...args] = line.trim().split(/\s+/);
  if (!CHANGE_INSTRUCTIONS.includes(instruction.toUpperCase())) {
    return `"${instruction}" is not an instruction docker commit takes (${CHANGE_INSTRUCTIONS.join(", ")})`;
  }
  if (args.length === 0) return `${instruction.toUpperCase()} needs a value`;
  if (instruction.toUpperCase() === "EXPOSE") return args.map(portProblem).find((problem) => problem !== undefined);
  return undefined;
}

/** Why an EXPOSE value (`8080`, `53/udp`) is not a port Docker takes, or undefined. */
export function portProblem(value: string | number): string | undefined {
  const match = /^(\d+)(?:\/(tcp|udp|sctp))?$/.exec(String(value));
  const port = Number(match?.[1]);
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535)
    return `"${value}" is not a port (1–65535, optionally /tcp, /udp or /sctp)`;
  return undefined;
}

/** Why `registry` cannot name a registry namespace (`host[:port]/path`), or undefined. */
export function registryProblem(registry: string): string | undefined {
  const host = registry.split("/")[0] as string;
  if (!(host.includes(".") || host.includes(":") || host === "localhost"))
    return `"${host}" is not a registry host: give host[:port]/namespace, e.g. registry.example.com/acme or 127.0.0.1:5000/acme`;
  return referenceProblem(`${registry}/x`);
}

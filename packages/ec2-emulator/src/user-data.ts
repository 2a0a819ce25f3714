/**
 * What an instance of an image without cloud-init does with its user data at first boot, worked out at RunInstances time (an
 * image with cloud-init gets the user data as given, in the NoCloud seed, and cloud-init splits it itself).
 */
export interface UserDataParts {
  /** Shell scripts to run once, in order, after sshd started (cloud-init's scripts-user stage). */
  scripts: string[];
  /** Lines appended to /var/log/cloud-init-output.log before the scripts run, about parts the emulator does not apply. */
  notes: string[];
}

const NOTE_PREFIX = "kiln-ec2-emulator:";

/**
 * Splits decoded user data the way cloud-init does: a MIME message (`Content-Type: multipart/mixed; boundary=…`, parts nested
 * or not, base64 or quoted-printable parts decoded) or a single payload. `text/x-shellscript` parts (and untyped or text/plain
 * ones starting with `#!`) become scripts; cloud-config and every other kind only get a note, as this runner only serves images
 * without cloud-init.
 */
export function parseUserData(userData: string | undefined): UserDataParts {
  const parts: UserDataParts = { scripts: [], notes: [] };
  if (userData === undefined || userData.trim() === "") return parts;
  if (/^(content-type|mime-version):/i.test(userData)) {
    const message = parseEntity(userData);
    collect(message.body, message.headers, parts, "user data");
  } else collect(userData, new Map(), parts, "user data");
  return parts;
}

interface Entity {
  /** Header names in lower case; continuation lines folded in. */
  headers: Map<string, string>;
  body: string;
}

function collect(content: string, headers: Map<string, string>, into: UserDataParts, label: string): void {
  const { type, params } = contentType(headers.get("content-type"));
  if (type.startsWith("multipart/")) {
    const boundary = params.get("boundary");
    if (!boundary) {
      into.notes.push(`${NOTE_PREFIX} ${label} (${type}) has no boundary; ignored`);
      return;
    }
    splitMultipart(content, boundary).forEach((raw, index) => {
      const part = parseEntity(raw);
      collect(decode(part.body, part.headers.get("content-transfer-encoding")), part.headers, into, `part ${index + 1}`);
    });
    return;
  }
  const kind = type === "text/plain" || type === "" ? guessType(content) : type;
  if (kind === "text/x-shellscript") into.scripts.push(content);
  else if (kind === "text/cloud-config")
    into.notes.push(`${NOTE_PREFIX} ${label} (text/cloud-config) not applied: this image has no cloud-init`);
  else if (kind === "message/rfc822") {
    const message = parseEntity(content);
    collect(message.body, message.headers, into, label);
  } else into.notes.push(`${NOTE_PREFIX} ${label} (${kind || "unknown type"}) not run: only text/x-shellscript user data runs`);
}

/** cloud-init's guess for a part without a useful Content-Type: by how its content starts. */
function guessType(content: string): string {
  if (content.startsWith("#!")) return "text/x-shellscript";
  if (content.startsWith("#cloud-config")) return "text/cloud-config";
  if (/^(content-type|mime-version):/i.test(content)) return "message/rfc822";
  return "";
}

/** Headers up to the first blank line, then the body (CRLF or LF line ends). */
function parseEntity(text: string): Entity {
  const lines = text.split(/\r?\n/);
  const headers = new Map<string, string>();
  let last: string | undefined;
  let index = 0;
  for (; index < lines.length; index++) {
    const line = lines[index] ?? "";
    if (line === "") {
      index++;
      break;
    }
    if (/^[ \t]/.test(line) && last) headers.set(last, `${headers.get(last) ?? ""} ${line.trim()}`);
    else {
      const colon = line.indexOf(":");
      // Not a header line: the entity has no headers and this is already the body.
      if (colon <= 0) return { headers: new Map(), body: text };
      last = line.slice(0, colon).trim().toLowerCase();
      headers.set(last, line.slice(colon + 1).trim());
    }
  }
  return { headers, body: lines.slice(index).join("\n") };
}

function contentType(header: string | undefined): { type: string; params: Map<string, string> } {
  const [type = "", ...rest] = (header ?? "").split(";");
  const params = new Map<string, string>();
  for (const param of rest) {
    const match = /^\s*([\w.-]+)\s*=\s*(?:"([^"]*)"|(\S+))\s*$/.exec(param);
    if (match?.[1]) params.set(match[1].toLowerCase(), match[2] ?? match[3] ?? "");
  }
  return { type: type.trim().toLowerCase(), params };
}

/** The parts between `--boundary` lines, up to `--boundary--`; the preamble and epilogue are dropped, as RFC 2046 says. */
function splitMultipart(body: string, boundary: string): string[] {
  const parts: string[] = [];
  let current: string[] | undefined;
  for (const line of body.split(/\r?\n/)) {
    const trimmed = line.trimEnd();
    if (trimmed === `--${boundary}--`) {
      if (current) parts.push(current.join("\n"));
      return parts;
    }
    if (trimmed === `--${boundary}`) {
      if (current) parts.push(current.join("\n"));
      current = [];
      continue;
    }
    current?.push(line);
  }
  if (current) parts.push(current.join("\n"));
  return parts;
}

function decode(body: string, encoding: string | undefined): string {
  switch (encoding?.trim().toLowerCase()) {
    case "base64":
      return Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8");
    case "quoted-printable": {
      const bytes = body
        .replace(/=\r?\n/g, "")
        .replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
      return Buffer.from(bytes, "latin1").toString("utf8");
    }
    default:
      return body;
  }
}

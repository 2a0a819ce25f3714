import { describe, expect, it } from "vitest";
import { fingerprint, formatHostKey } from "./connect.js";
import { remoteCommand } from "./ssh.js";

describe("remoteCommand", () => {
  it("quotes every argument, so nothing in a value reaches the shell", () => {
    expect(remoteCommand(["echo", `it's $HOME`], {}, "root").line).toBe(`echo $$; exec 'echo' 'it'\\''s $HOME'`);
    expect(remoteCommand(["printf", "%s", "a b"], {}, "root")).toEqual({ line: "echo $$; exec 'printf' '%s' 'a b'", sudo: false });
  });

  it("runs a string through /bin/sh, in cwd, with env on stdin (never on the line), as another user through sudo", () => {
    const command = remoteCommand("echo $X", { cwd: "/srv/app", env: { X: "s3cret value" }, user: "www-data" }, "admin");
    const readEnv = `'/bin/sh' '-c' 'kiln_env=$(dd bs=1 count=24 2>/dev/null) && eval "$kiln_env" && unset kiln_env && exec "$@"' 'sh'`;
    const cd = `'/bin/sh' '-c' 'cd "$1" && shift && exec "$@"' 'sh' '/srv/app'`;
    expect(command).toEqual({
      line: `echo $$; exec sudo -n -u www-data -- ${readEnv} ${cd} '/bin/sh' '-c' 'echo $X'`,
      sudo: true,
      stdinPrefix: Buffer.from("export X='s3cret value'\n"),
    });
    expect(command.line).not.toContain("s3cret");
  });

  it("uses plain sudo for root, and no sudo for the login user itself", () => {
    expect(remoteCommand("id", { user: "root" }, "admin").line).toContain("exec sudo -n -- '/bin/sh'");
    expect(remoteCommand("id", { user: "root" }, "root").sudo).toBe(false);
    expect(remoteCommand("id", { user: "admin" }, "admin").sudo).toBe(false);
  });

  it("refuses an environment variable name the shell would misread", () => {
    expect(() => remoteCommand("id", { env: { "A;rm": "x" } }, "root")).toThrow('invalid environment variable name "A;rm"');
  });
});

describe("host keys", () => {
  it("formats a key blob as known_hosts text and fingerprints it like ssh-keygen", () => {
    const type = Buffer.from("ssh-ed25519");
    const blob = Buffer.concat([Buffer.from([0, 0, 0, type.length]), type, Buffer.alloc(36, 1)]);
    const key = formatHostKey(blob);
    expect(key).toBe(`ssh-ed25519 ${blob.toString("base64")}`);
    expect(fingerprint(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

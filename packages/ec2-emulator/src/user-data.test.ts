import { describe, expect, it } from "vitest";
import { parseUserData } from "./user-data.js";

/** What Python's email.mime (and so cloud-init's make-mime and most tools) writes: LF line ends, quoted boundary. */
const MULTIPART = [
  'Content-Type: multipart/mixed; boundary="===============0123=="',
  "MIME-Version: 1.0",
  "",
  "This is the preamble.",
  "--===============0123==",
  'Content-Type: text/cloud-config; charset="us-ascii"',
  "MIME-Version: 1.0",
  "Content-Transfer-Encoding: 7bit",
  'Content-Disposition: attachment; filename="config.yaml"',
  "",
  "#cloud-config",
  "packages: [nginx]",
  "--===============0123==",
  'Content-Type: text/x-shellscript; charset="us-ascii"',
  "",
  "#!/bin/sh",
  "echo first",
  "--===============0123==",
  "Content-Type: text/x-shellscript",
  "Content-Transfer-Encoding: base64",
  "",
  Buffer.from("#!/bin/sh\necho second\n").toString("base64"),
  "--===============0123==",
  "Content-Type: text/plain",
  "",
  "#!/bin/bash",
  "echo third",
  "--===============0123==--",
  "epilogue",
].join("\n");

describe("parseUserData", () => {
  it("runs a plain script, notes plain cloud-config, and ignores nothing silently", () => {
    expect(parseUserData("#!/bin/sh\necho hi\n")).toEqual({ scripts: ["#!/bin/sh\necho hi\n"], notes: [] });
    expect(parseUserData(undefined)).toEqual({ scripts: [], notes: [] });
    expect(parseUserData("#cloud-config\nruncmd: [ls]\n").notes).toEqual([
      "kiln-ec2-emulator: user data (text/cloud-config) not applied: this image has no cloud-init",
    ]);
    expect(parseUserData("just some text").notes[0]).toMatch(/only text\/x-shellscript user data runs/);
  });

  it("splits multipart/mixed into scripts in order (base64 decoded, text/plain guessed) and notes the cloud-config part", () => {
    expect(parseUserData(MULTIPART)).toEqual({
      scripts: ["#!/bin/sh\necho first", "#!/bin/sh\necho second\n", "#!/bin/bash\necho third"],
      notes: ["kiln-ec2-emulator: part 1 (text/cloud-config) not applied: this image has no cloud-init"],
    });
  });

  it("reads CRLF messages, folded headers, nested multiparts and quoted-printable parts", () => {
    const inner = [
      "--in",
      "Content-Type: text/x-shellscript",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      "#!/bin/sh",
      "echo caf=C3=A9 =",
      "done",
      "--in--",
    ].join("\r\n");
    const message = [
      "Content-Type: multipart/mixed;",
      '  boundary="out"',
      "",
      "--out",
      'Content-Type: multipart/alternative; boundary="in"',
      "",
      inner,
      "--out--",
      "",
    ].join("\r\n");
    expect(parseUserData(message)).toEqual({ scripts: ["#!/bin/sh\necho café done"], notes: [] });
  });

  it("notes part types it does not run, and a multipart without a boundary", () => {
    const message = [
      "Content-Type: multipart/mixed; boundary=b",
      "",
      "--b",
      "Content-Type: text/cloud-boothook",
      "",
      "#cloud-boothook",
      "--b--",
    ].join("\n");
    expect(parseUserData(message).notes).toEqual([
      "kiln-ec2-emulator: part 1 (text/cloud-boothook) not run: only text/x-shellscript user data runs",
    ]);
    expect(parseUserData("Content-Type: multipart/mixed\n\nbody").notes).toEqual([
      "kiln-ec2-emulator: user data (multipart/mixed) has no boundary; ignored",
    ]);
  });
});

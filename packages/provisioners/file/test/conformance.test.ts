import docker from "@kiln/driver-docker";
import { testProvisioner } from "@kiln/test-suite";
import file from "../src/index.js";
import { sshDocker, sshDockerOptions } from "@kiln/communicator-ssh/testing";
import { fixtureOptions } from "@kiln/driver-docker/testing";

const read = async (machine: { exec(cmd: string): Promise<{ stdout: string }> }, path: string) =>
  (await machine.exec(`cat ${path}`)).stdout;

testProvisioner("file", {
  factory: file,
  machines: {
    "a Docker container": { factory: docker, options: fixtureOptions },
    "SSH as a non-root login with sudo": { factory: sshDocker, options: () => sshDockerOptions("kiln") },
  },
  cases: [
    {
      name: "a directory's contents (trailing slash) into a directory",
      files: { "site/index.html": "<h1>hello</h1>\n", "site/css/main.css": "body {}\n" },
      options: { source: "site/", destination: "/var/www/" },
      check: async (machine) => {
        if ((await read(machine, "/var/www/index.html")) !== "<h1>hello</h1>\n") throw new Error("/var/www/index.html missing");
        if ((await read(machine, "/var/www/css/main.css")) !== "body {}\n") throw new Error("/var/www/css/main.css missing");
      },
    },
    {
      name: "inline content with a mode",
      options: { content: "welcome\n", destination: "/etc/motd", mode: "0600" },
      check: async (machine) => {
        if ((await machine.exec("stat -c %a:%s /etc/motd")).stdout !== "600:8\n") throw new Error("/etc/motd has the wrong mode or size");
      },
    },
  ],
  failing: {
    options: { source: "/definitely/not/here", destination: "out/", direction: "download" },
    message: /\/definitely\/not\/here not found on machine/,
  },
  invalid: [
    { destination: "/x" },
    { source: "a", destination: "relative" },
    { sources: ["a", "b"], destination: "/etc/file" },
    { source: "a", destination: "/x", mode: 644 },
  ],
  fingerprintFile: "site/index.html",
});

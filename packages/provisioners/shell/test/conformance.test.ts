import docker from "@kiln/driver-docker";
import { testProvisioner } from "@kiln/test-suite";
import shell from "../src/index.js";
import { sshDocker, sshDockerOptions } from "@kiln/communicator-ssh/testing";
import { fixtureOptions } from "@kiln/driver-docker/testing";

testProvisioner("shell", {
  factory: shell,
  machines: {
    "a Docker container": { factory: docker, options: fixtureOptions },
    "SSH as a non-root login with sudo": { factory: sshDocker, options: () => sshDockerOptions("kiln") },
  },
  cases: [
    {
      name: "a script from the bake directory and inline commands with env",
      files: { "scripts/setup.sh": '#!/bin/sh\nset -e\nmkdir -p /opt/app\necho "$APP_MODE" > /opt/app/mode\n' },
      options: { script: "scripts/setup.sh", env: { APP_MODE: "production" } },
      check: async (machine) => {
        const result = await machine.exec("cat /opt/app/mode");
        if (result.stdout !== "production\n") throw new Error(`unexpected /opt/app/mode: ${JSON.stringify(result.stdout)}`);
      },
    },
    {
      name: "inline commands",
      options: { inline: ["echo baked > /etc/baked", "test -s /etc/baked"] },
      check: async (machine) => {
        if ((await machine.exec("cat /etc/baked")).stdout !== "baked\n") throw new Error("/etc/baked not written");
      },
    },
  ],
  failing: { options: { inline: ["echo disk full >&2", "exit 28"] }, message: /exited with code 28[\s\S]*disk full/ },
  invalid: [{}, { inline: "echo not a list" }, { inline: ["true"], script: "a.sh" }, { inline: ["true"], unknown: 1 }],
  fingerprintFile: "scripts/setup.sh",
});

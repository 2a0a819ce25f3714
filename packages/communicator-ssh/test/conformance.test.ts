import { testDriver } from "@kiln/test-suite";
import { listDockerResources } from "@kiln/driver-docker/testing";
import { sshDocker, sshDockerOptions } from "../src/testing.js";

// The communicator proves the contract drivers do: every command and file of the suite goes over SSH.
testDriver("ssh (sshd containers)", {
  factory: sshDocker,
  options: async () => ({ ...(await sshDockerOptions()) }),
  listResources: listDockerResources,
});

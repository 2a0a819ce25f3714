import { testDriver } from "@kiln/test-suite";
import { listDockerResources } from "@kiln/driver-docker/testing";
import { sshDocker, sshDockerOptions } from "../src/testing.js";

// The communicator proves the contract drivers do: every command and file of the suite goes over SSH.
testDriver("ssh (sshd containers, root login)", {
  factory: sshDocker,
  options: () => sshDockerOptions("root"),
  listResources: listDockerResources,
});

// As on EC2 and Vagrant: a non-root login that reaches root through sudo, for commands, files and the connection descriptor.
testDriver("ssh (sshd containers, non-root login with sudo)", {
  factory: sshDocker,
  options: () => sshDockerOptions("kiln"),
  listResources: listDockerResources,
});

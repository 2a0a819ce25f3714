// Test machines reached over SSH, for Kiln's own suites and third-party provisioners: sshd containers on the local Docker
// engine. Needs dockerode, tar-stream and @kiln/driver-docker (optional peer dependencies of this package).
export { sshDocker, sshDockerOptions, type SshDockerOptions } from "./testing/ssh-docker-driver.js";
export {
  ensureSshdImage,
  generateKeyPair,
  startSshd,
  SSHD_IMAGE,
  type KeyPair,
  type SshdContainer,
  type SshdContainerOptions,
} from "./testing/sshd.js";

export { connectSsh, SshMachine, type SshOptions, type SshExecResult } from "./ssh.js";
export { fingerprint } from "./connect.js";

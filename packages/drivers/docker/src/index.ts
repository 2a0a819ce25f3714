export { docker as default, docker } from "./docker.js";
export type { DockerOptions, DockerChanges } from "./options.js";
export type { DebootstrapSource } from "./debootstrap.js";

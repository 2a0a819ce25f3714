export { lxc as default, lxc, lxcOptionsSchema, type LxcOptions } from "./lxc.js";
export { LxcMachine } from "./machine.js";

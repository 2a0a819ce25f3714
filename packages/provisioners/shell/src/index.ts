export { shell as default, shell } from "./shell.js";
export type { ShellOptions } from "./shell.js";

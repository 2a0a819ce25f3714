export { puppet as default, puppet } from "./puppet.js";
export type { PuppetOptions } from "./puppet.js";

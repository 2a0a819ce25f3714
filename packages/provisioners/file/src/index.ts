export { file as default, file } from "./file.js";
export type { FileOptions } from "./file.js";

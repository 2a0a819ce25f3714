export { MACHINES_DIR, unshare as default, unshare, unshareOptionsSchema, type UnshareOptions } from "./unshare.js";

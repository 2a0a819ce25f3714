export { chef as default, chef } from "./chef.js";
export type { ChefOptions } from "./chef.js";

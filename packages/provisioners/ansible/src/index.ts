export { ansible as default, ansible } from "./ansible.js";
export type { AnsibleOptions } from "./ansible.js";

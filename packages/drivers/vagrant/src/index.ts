export { BASE_BOX_PACKAGES, type BaseBox, buildBaseBox, findBaseBox, insecurePublicKey } from "./base-box.js";
export { type VagrantOptions, vagrantOptionsSchema } from "./options.js";
export { VagrantMachine } from "./machine.js";
export { vagrantDriver, vagrantDriver as default } from "./vagrant-driver.js";

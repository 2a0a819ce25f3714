export { ec2, ec2 as default } from "./ec2.js";
export { ec2OptionsSchema, type Ec2Options } from "./options.js";

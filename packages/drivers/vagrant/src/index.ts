export { BASE_BOX_PACKAGES, type BaseBox, buildBaseBox, insecurePublicKey } from "./base-box.js";

export { startEmulator, type Emulator, type EmulatorOptions } from "./server.js";
export type { Transition } from "./context.js";
export type { FaultRule, FaultSpec } from "./faults.js";
export { isEmpty, resourcesTagged, type EmulatorResources } from "./resources.js";
export { BASE_AMI_ID, BASE_AMI_NAME, CLOUD_INIT_AMI_ID, CLOUD_INIT_AMI_NAME, DEBIAN_OWNER_ID, seededImageOptions } from "./seed.js";
export { ACCOUNT_ID, REGION } from "./state.js";
export { BASE_DOCKER_IMAGE, CLOUD_INIT_DOCKER_IMAGE, ensureBaseImage, ensureCloudInitImage } from "./base-image.js";

export { testDriver, type DriverFixture } from "./driver.js";
export { testProvisioner, type ProvisionerFixture, type ProvisionerCase, type ProvisionerMachine } from "./provisioner.js";
export { createTestContext, execOk, testPluginInit, type TestContext, type TestContextOptions } from "./context.js";
export { runOutside } from "./outside.js";
export { bakeWith, CONFORMANCE_DRIVER, type BakeOptions } from "./bake.js";
export { freePort, writeFiles } from "./files.js";

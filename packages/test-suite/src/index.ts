export { testDriver, type DriverFixture } from "./driver.js";
export { testProvisioner, type ProvisionerFixture, type ProvisionerCase } from "./provisioner.js";
export { createTestContext, execOk, type TestContext, type TestContextOptions } from "./context.js";
export { bakeWith, type BakeOptions } from "./bake.js";

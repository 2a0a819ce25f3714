import { vitestConfig } from "../../../vitest.shared.ts";

// Virtual machines under software emulation (TCG): slow, so this package's tests are their own vitest project. Two files at
// a time: a VM boot keeps one core busy and waits a lot, and the example and the conformance suite share the cached base box.
export default vitestConfig({ test: { testTimeout: 900_000, globalSetup: ["test/global-setup.ts"], maxWorkers: 2 } });

import { vitestConfig } from "../../../vitest.shared.ts";

// Virtual machines under software emulation (TCG): slow, so this package's tests are their own vitest project. Files run one
// after another: two suites booting VMs at once on a small machine would only slow each other down.
export default vitestConfig({ test: { testTimeout: 900_000, globalSetup: ["test/global-setup.ts"], fileParallelism: false } });

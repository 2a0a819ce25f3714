import { vitestConfig } from "../../../vitest.shared.ts";

// Virtual machines under software emulation (TCG): slow, so this package's tests are their own vitest project.
export default vitestConfig({ test: { testTimeout: 600_000 } });

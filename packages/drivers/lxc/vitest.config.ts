import { vitestConfig } from "../../../vitest.shared.ts";

// System containers boot a whole init: slower than the Docker suites, so this package's tests are their own vitest project.
export default vitestConfig({ test: { testTimeout: 240_000 } });

import { vitestConfig } from "../../vitest.shared.ts";

export default vitestConfig({ test: { globalSetup: ["test/global-setup.ts"] } });

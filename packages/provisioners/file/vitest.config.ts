import { defineConfig } from "vitest/config";

// Integration tests start real containers: the first run may build the fixture image, so hooks get a long timeout.
export default defineConfig({ test: { include: ["src/**/*.test.ts", "test/**/*.test.ts"], hookTimeout: 600_000, testTimeout: 120_000 } });

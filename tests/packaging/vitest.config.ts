import { vitestConfig } from "../../vitest.shared.ts";

// Every package is packed once, before any test file runs; the test files share the tarballs, a package store and caches.
// The tests mostly wait (on the registry, installers, the Docker engine), so their files run side by side even on two cores.
export default vitestConfig({ test: { globalSetup: ["test/global-setup.ts"], maxWorkers: 4 } });

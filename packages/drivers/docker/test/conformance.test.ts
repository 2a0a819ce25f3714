import { testDriver } from "@kiln/test-suite";
import docker from "../src/index.js";
import { ensureFixtureImage, listDockerResources } from "../src/testing.js";

testDriver("docker", {
  factory: docker,
  options: async () => ({ source: await ensureFixtureImage() }),
  listResources: listDockerResources,
});

import { testDriver } from "@kiln/test-suite";
import ec2 from "../src/index.js";
import { fileEmulator } from "./emulator.js";

const emulator = fileEmulator();

// Through the emulator, every command and file goes over SSH to an instance, and every artefact is an AMI.
testDriver("ec2 (emulator)", {
  factory: ec2,
  options: () => emulator.options(),
  listResources: (runId) => emulator.leftovers(runId),
  timeout: 180_000,
});

import Docker from "dockerode";
import { ensureBaseImage } from "../src/base-image.js";

/** Builds the base AMI's image once before the test files start, so parallel workers do not each build (and commit) their own. */
export default async function setup(): Promise<void> {
  await ensureBaseImage(new Docker());
}

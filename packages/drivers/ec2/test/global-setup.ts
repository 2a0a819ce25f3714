import { ensureBaseImage } from "@kiln/ec2-emulator";
import Docker from "dockerode";

/** Builds the base AMI's image once before the test files start, so parallel workers do not each build their own. */
export default async function setup(): Promise<void> {
  await ensureBaseImage(new Docker());
}

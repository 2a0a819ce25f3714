import { vitestConfig } from "../../../vitest.shared.ts";

// Static fake credentials for the AWS SDK's default chain: the EC2 emulator checks that requests are signed, not by whom.
export default vitestConfig({
  test: { env: { AWS_ACCESS_KEY_ID: "AKIDKILNTEST", AWS_SECRET_ACCESS_KEY: "kiln-test-secret", AWS_EC2_METADATA_DISABLED: "true" } },
});

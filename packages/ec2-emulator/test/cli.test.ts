import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { DescribeImagesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID } from "../src/index.js";

const cli = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

describe("kiln-ec2-emulator", () => {
  it("serves the SDK standalone and exits 0 on SIGINT", async () => {
    const child = spawn(process.execPath, [cli, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      let output = "";
      child.stdout.setEncoding("utf8");
      const endpoint = await new Promise<string>((resolve, reject) => {
        child.stdout.on("data", (chunk: string) => {
          output += chunk;
          const match = /listening on (http:\/\/\S+)/.exec(output);
          if (match?.[1]) resolve(match[1]);
        });
        child.once("exit", (code) => reject(new Error(`exited with ${code} before listening: ${output}`)));
      });
      const client = new EC2Client({
        endpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "AKIDKILNTEST", secretAccessKey: "secret" },
      });
      const { Images } = await client.send(new DescribeImagesCommand({ ImageIds: [BASE_AMI_ID] }));
      expect(Images?.[0]?.ImageId).toBe(BASE_AMI_ID);
      child.kill("SIGINT");
      const [code] = await once(child, "exit");
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});

import { bakeFileJsonSchema, pluginInit, type Logger } from "@kiln/core";

/**
 * Prints the bake file's JSON Schema, with the options of the first-party plugins this CLI ships, and of the EC2 driver when it
 * is installed beside the CLI (it is an optional package: a user installs it to bake AMIs).
 */
export async function schema(): Promise<number> {
  const [docker, chroot, shell, file, ec2] = await Promise.all([
    import("@kiln/driver-docker"),
    import("@kiln/driver-chroot"),
    import("@kiln/provisioner-shell"),
    import("@kiln/provisioner-file"),
    import("@kiln/driver-ec2").catch(() => undefined),
  ]);
  const silent: Logger = { info() {}, warn() {}, debug() {} };
  const init = (kind: "driver" | "provisioner", name: string) => pluginInit(kind, name, process.cwd(), silent);
  const json = bakeFileJsonSchema({
    drivers: {
      docker: docker.default(init("driver", "docker")).schema,
      chroot: chroot.default(init("driver", "chroot")).schema,
      ...(ec2 ? { ec2: ec2.default(init("driver", "ec2")).schema } : {}),
    },
    provisioners: { shell: shell.default(init("provisioner", "shell")).schema, file: file.default(init("provisioner", "file")).schema },
  });
  process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  return 0;
}

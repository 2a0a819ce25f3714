import { z } from "zod";
import { timeoutSchema } from "@kiln/core";
import { debootstrapRecipeSchema } from "@kiln/debootstrap";

/** Vagrant's box names: `owner/name` or `name`. */
const boxName = z.string().regex(/^[\w.-]+(\/[\w.-]+)?$/, "a box name such as debian/bookworm64");

export const vagrantOptionsSchema = z.strictObject({
  source: z
    .union([
      z.strictObject({ debootstrap: debootstrapRecipeSchema }),
      z.strictObject({
        box: z.strictObject({
          name: boxName,
          version: z
            .string()
            .regex(/^\d+(\.\d+)*$/, "a box version: 1.2.0")
            .optional(),
        }),
      }),
      z.strictObject({ box_file: z.string().min(1) }),
    ])
    .optional()
    .describe(
      "{ debootstrap: { suite: bookworm } } (a base box built from scratch), { box: { name, version } } (installed), or { box_file: ./x.box }.",
    ),
  memory: z.number().int().min(256).default(1024).describe("MiB of memory."),
  cpus: z.number().int().min(1).default(1),
  libvirt_driver: z
    .enum(["auto", "kvm", "qemu"])
    .default("auto")
    .describe("kvm, qemu (software emulation), or auto: kvm where it can run guests, else qemu (said in the log)."),
  machine_type: z
    .string()
    .regex(/^[\w.-]+$/, "a QEMU machine type such as q35")
    .optional(),
  uri: z
    .string()
    .regex(/^qemu(\+\w+)?:\/\/[\w.@:-]*\/(system|session)$/, "a libvirt URI such as qemu:///system")
    .default("qemu:///system"),
  boot_timeout: timeoutSchema.default("10m").describe("How long `vagrant up` may wait for the VM to boot and answer SSH."),
});

/** Options of the `vagrant` driver. */
export type VagrantOptions = z.infer<typeof vagrantOptionsSchema>;

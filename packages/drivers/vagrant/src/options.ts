import { z } from "@kiln/core";
import { timeoutSchema } from "@kiln/core";
import { debootstrapRecipeSchema } from "@kiln/debootstrap";

/** Vagrant's box names: `owner/name` or `name`. */
const boxName = z.string().regex(/^[\w.-]+(\/[\w.-]+)?$/, "a box name such as debian/bookworm64");

export const vagrantOptionsSchema = z.strictObject({
  source: z
    .union([
      z.strictObject({
        debootstrap: debootstrapRecipeSchema.describe(
          "A base box built from scratch: a Debian tree by debootstrap with a kernel, sshd and a vagrant user; cached by recipe.",
        ),
      }),
      z.strictObject({
        box: z
          .strictObject({
            name: boxName.describe('Name of a box installed in Vagrant, e.g. "debian/bookworm64".'),
            version: z
              .string()
              .regex(/^\d+(\.\d+)*$/, "a box version: 1.2.0")
              .optional()
              .describe('Version of that box, e.g. "1.2.0". Default: the newest installed.'),
          })
          .describe("A box installed in Vagrant (vagrant box list) for the libvirt provider."),
      }),
      z.strictObject({ box_file: z.string().min(1).describe("A .box file of the project, relative to the bake file.") }),
    ])
    .optional()
    .describe(
      "{ debootstrap: { suite: bookworm } } (a base box built from scratch), { box: { name, version } } (installed), or { box_file: ./x.box }.",
    ),
  memory: z.number().int().min(256).default(1024).describe("MiB of memory."),
  cpus: z.number().int().min(1).default(1).describe("Virtual CPUs of the VM. Default 1."),
  libvirt_driver: z
    .enum(["auto", "kvm", "qemu"])
    .default("auto")
    .describe("kvm, qemu (software emulation), or auto: kvm where it can run guests, else qemu (said in the log)."),
  machine_type: z
    .string()
    .regex(/^[\w.-]+$/, "a QEMU machine type such as q35")
    .optional()
    .describe('QEMU machine type of the VM, e.g. "q35". Default: libvirt\'s.'),
  uri: z
    .string()
    .regex(/^qemu(\+\w+)?:\/\/[\w.@:-]*\/(system|session)$/, "a libvirt URI such as qemu:///system")
    .default("qemu:///system")
    .describe('libvirt connection the VM, its storage pool and its disk live on. Default "qemu:///system".'),
  boot_timeout: timeoutSchema.default("10m").describe("How long `vagrant up` may wait for the VM to boot and answer SSH."),
});

/** Options of the `vagrant` driver. */
export type VagrantOptions = z.infer<typeof vagrantOptionsSchema>;

export { chroot as default, chroot, chrootOptionsSchema, MACHINES_DIR, type ChrootOptions } from "./chroot.js";

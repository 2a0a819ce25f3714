/** A Debian system container: minbase with systemd as init and python3 (for Ansible), built once by @kiln/debootstrap. */
export const SYSTEM_SOURCE = { debootstrap: { suite: "bookworm", variant: "minbase", include: ["systemd-sysv", "python3"] } };

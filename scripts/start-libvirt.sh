#!/usr/bin/env bash
# Starts libvirt's daemons for the Vagrant driver (vagrant-libvirt talks to qemu:///system): no init system starts them here.
# Safe to run again: does nothing when libvirtd already answers.
set -euo pipefail
virsh -c qemu:///system list >/dev/null 2>&1 && exit 0
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
for _ in $(seq 1 100); do
  virsh -c qemu:///system list >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "libvirtd did not answer on qemu:///system within 10 s" >&2
exit 1

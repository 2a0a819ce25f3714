#!/usr/bin/env bash
# Prepares this host for the LXC driver's tests (as /work/shared/MACHINE.md found it): LXC's bridge lxcbr0 (started by hand:
# there is no init system), and a way through Docker's FORWARD DROP policy for it. Safe to run again: each step checks first.
set -euo pipefail
if [ ! -e /sys/class/net/lxcbr0 ]; then
  /usr/libexec/lxc/lxc-net start
fi
if iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP'; then
  chain=FORWARD
  iptables -S DOCKER-USER >/dev/null 2>&1 && chain=DOCKER-USER
  iptables -C "$chain" -i lxcbr0 -j ACCEPT 2>/dev/null || iptables -I "$chain" -i lxcbr0 -j ACCEPT
  iptables -C "$chain" -o lxcbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT 2>/dev/null ||
    iptables -I "$chain" -o lxcbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
fi

#!/usr/bin/env bash
# Prepares this host for the LXC driver's tests (as /work/shared/MACHINE.md found it): LXC's bridge lxcbr0 with its dnsmasq
# (started by hand: there is no init system), and a way through Docker's FORWARD DROP policy for it. Safe to run again.
set -euo pipefail
dnsmasq_running() {
  local pid
  # A killed dnsmasq nobody reaped stays a zombie (state Z) under its name.
  pid=$(cat /run/lxc/dnsmasq.pid 2>/dev/null) && grep -q "^$pid (dnsmasq) [^Z]" "/proc/$pid/stat" 2>/dev/null
}
if [ ! -e /sys/class/net/lxcbr0 ] || ! dnsmasq_running; then
  # /run outlives the dnsmasq on a restarted machine: stale state would stop lxc-net (or have it kill -9 a reused pid).
  rm -f /run/lxc/network_up /run/lxc/dnsmasq.pid
  /usr/libexec/lxc/lxc-net start
fi
if iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP'; then
  chain=FORWARD
  iptables -S DOCKER-USER >/dev/null 2>&1 && chain=DOCKER-USER
  iptables -C "$chain" -i lxcbr0 -j ACCEPT 2>/dev/null || iptables -I "$chain" -i lxcbr0 -j ACCEPT
  iptables -C "$chain" -o lxcbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT 2>/dev/null ||
    iptables -I "$chain" -o lxcbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
fi

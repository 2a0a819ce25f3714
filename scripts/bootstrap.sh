#!/usr/bin/env bash
# Installs everything Kiln and its tests need on a fresh Debian machine, starts the Docker engine, and builds the packages.
# Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v git >/dev/null 2>&1 || missing+=(git)
# The EC2 tests log in to an instance with OpenSSH, as a user following --on-error=abort would.
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
# The Docker driver's remote-engine test gives a second dockerd a bridge of its own.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The registry tests push to and pull from a real OCI registry (distribution 2.8) that they start on 127.0.0.1.
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
# The registry tests' htpasswd-protected registry: its password file is made with `htpasswd -B`.
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
# The TLS registry and the remote engine on tcp://127.0.0.2 get certificates from a throwaway CA made with openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# `kiln images --format svg` renders the lineage with Graphviz's dot, and the CLI's fleet-output test runs it.
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
# The Ansible provisioner runs ansible-playbook here; Debian's ansible bundles community.docker, community.general, ansible.posix.
command -v ansible-playbook >/dev/null 2>&1 || missing+=(ansible)
# The Puppet provisioner's tests check its output parser against the host's real puppet apply.
command -v puppet >/dev/null 2>&1 || missing+=(puppet)
# The Chef provisioner's tests read the solo.rb Kiln writes with Ruby.
command -v ruby >/dev/null 2>&1 || missing+=(ruby)
# The LXC driver: the lxc tools and templates; Ansible reaches LXC containers through python3-lxc.
command -v lxc-start >/dev/null 2>&1 || missing+=(lxc)
[ -d /usr/share/lxc/templates ] && [ -e /usr/share/lxc/templates/lxc-debian ] || missing+=(lxc-templates)
/usr/bin/python3 -c 'import lxc' >/dev/null 2>&1 || missing+=(python3-lxc)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Vagrant driver: vagrant with vagrant-libvirt, libvirt's daemon with its QEMU driver, QEMU (software emulation here).
# Without recommends: they would pull in libguestfs (a kernel of its own), a desktop stack, and upgrade host packages.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
vm_missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || vm_missing+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || vm_missing+=(qemu-utils)
command -v vagrant >/dev/null 2>&1 || vm_missing+=(vagrant)
for package in vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients dnsmasq-base; do
  installed "$package" || vm_missing+=("$package")
done
if [ ${#vm_missing[@]} -gt 0 ]; then
  say "installing ${vm_missing[*]}"
  [ ${#missing[@]} -gt 0 ] || as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${vm_missing[@]}" >/dev/null
fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "12.21.0" ]; then
  say "installing pnpm 12.21.0"
  npm install -g pnpm@12.21.0 >/dev/null
fi

bash scripts/start-docker.sh
# After dockerd: its FORWARD DROP policy is what LXC's bridge needs a way through.
bash scripts/prepare-lxc.sh
# libvirtd and virtlogd for the Vagrant driver: nothing else starts them here.
bash scripts/start-libvirt.sh

say "installing dependencies"
pnpm install --frozen-lockfile
say "building packages"
pnpm build --output-logs=errors-only

import { randomInt } from "node:crypto";
import { access, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { KilnError, type PreflightProblem } from "@kiln/core";
import { runHost, withFileLock } from "@kiln/core/kit";

/** Starts LXC's own bridge (lxcbr0, 10.0.3.1/24, dnsmasq for DNS) on hosts without an init system to start it. */
export const LXC_NET = "/usr/libexec/lxc/lxc-net";

/** The iptables rules that let a bridge's traffic through a FORWARD chain whose policy is DROP (Docker sets that). */
function forwardRules(chain: string, bridge: string): string[][] {
  return [
    [chain, "-i", bridge, "-j", "ACCEPT"],
    [chain, "-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
  ];
}

async function bridgeExists(bridge: string): Promise<boolean> {
  return access(join("/sys/class/net", bridge)).then(
    () => true,
    () => false,
  );
}

/** lxc-net's state: `/run/lxc/network_up` and its dnsmasq's pid file outlive the dnsmasq itself (a restarted host keeps /run). */
const LXC_NET_RUN = "/run/lxc";

/** Whether lxc-net's dnsmasq (the containers' DNS and DHCP server on lxcbr0) is alive: a bridge without it resolves no names. */
async function lxcDnsmasqRunning(): Promise<boolean> {
  const pid = (await readFile(join(LXC_NET_RUN, "dnsmasq.pid"), "utf8").catch(() => "")).trim();
  if (!/^\d+$/.test(pid)) return false;
  // "PID (dnsmasq) S …": a killed dnsmasq nobody reaped stays a zombie (state Z) with its name.
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return stat.startsWith(`${pid} (dnsmasq) `) && stat[`${pid} (dnsmasq) `.length] !== "Z";
}

/** The rules still missing for the bridge, and the chain they belong in; none when FORWARD accepts (no Docker, no DROP). */
async function missingForwardRules(bridge: string): Promise<string[][]> {
  const forward = await runHost("iptables", ["-S", "FORWARD"]).catch(() => "");
  if (!forward.split("\n").includes("-P FORWARD DROP")) return [];
  const chain = (await runHost("iptables", ["-S", "DOCKER-USER"]).catch(() => undefined)) === undefined ? "FORWARD" : "DOCKER-USER";
  const missing: string[][] = [];
  for (const rule of forwardRules(chain, bridge)) {
    const present = await runHost("iptables", ["-C", ...rule]).then(
      () => true,
      () => false,
    );
    if (!present) missing.push(rule);
  }
  return missing;
}

/** What stops containers on `bridge` from reaching the network, with the commands that fix it (nothing is changed). */
export async function bridgeProblems(bridge: string): Promise<PreflightProblem[]> {
  const problems: PreflightProblem[] = [];
  if (!(await bridgeExists(bridge)))
    problems.push({
      message: `the bridge ${bridge} does not exist, so containers on it cannot start`,
      hint:
        bridge === "lxcbr0"
          ? `start it: ${LXC_NET} start — or set setup_network: true (Kiln runs it), or network: none`
          : `create the bridge, or use network: none`,
      path: ["network"],
    });
  else if (bridge === "lxcbr0" && !(await lxcDnsmasqRunning()))
    problems.push({
      message: "the bridge lxcbr0 exists but lxc-net's dnsmasq is not running, so containers on it cannot resolve names",
      hint: `restart lxc-net: rm -f ${LXC_NET_RUN}/network_up ${LXC_NET_RUN}/dnsmasq.pid; ${LXC_NET} start — or set setup_network: true`,
      path: ["network"],
    });
  const rules = await missingForwardRules(bridge);
  if (rules.length > 0)
    problems.push({
      message: `the FORWARD chain drops traffic (Docker sets its policy to DROP), so containers on ${bridge} cannot reach the network`,
      hint: `allow the bridge: ${rules.map((rule) => `iptables -I ${rule.join(" ")}`).join("; ")} — or set setup_network: true`,
      path: ["network"],
    });
  return problems;
}

/** Makes `bridge` usable (`setup_network: true`): starts lxc-net when the bridge is LXC's, and lets its traffic through FORWARD. */
export async function setupBridge(bridge: string): Promise<void> {
  if (bridge === "lxcbr0") {
    // Under a lock: two bakes starting at once would both start lxc-net.
    await withFileLock(join(LXC_NET_RUN, ".kiln-lxc-net"), async () => {
      if ((await bridgeExists(bridge)) && (await lxcDnsmasqRunning())) return;
      // State left by a dnsmasq that is gone: lxc-net would refuse to start, or kill -9 whatever process now has that pid.
      await rm(join(LXC_NET_RUN, "network_up"), { force: true });
      await rm(join(LXC_NET_RUN, "dnsmasq.pid"), { force: true });
      await runHost(LXC_NET, ["start"]);
    });
  } else if (!(await bridgeExists(bridge))) {
    throw new KilnError("E_LAUNCH", `the bridge ${bridge} does not exist`, { hint: "create it first" });
  }
  for (const rule of await missingForwardRules(bridge)) await runHost("iptables", ["-I", ...rule]);
}

/** The bridge's own IPv4 address and prefix length (`10.0.3.1`, 24): the containers' gateway and DNS server. */
async function bridgeAddress(bridge: string): Promise<{ address: string; prefix: number }> {
  const shown = await runHost("ip", ["-4", "-o", "addr", "show", "dev", bridge]);
  const match = /inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(shown);
  if (!match?.[1] || !match[2]) throw new KilnError("E_LAUNCH", `the bridge ${bridge} has no IPv4 address`);
  return { address: match[1], prefix: Number(match[2]) };
}

export interface Network {
  /** Lines for the container's config. */
  config: string[];
  /** The container's address, when it has one. */
  address?: string;
  /** `/etc/resolv.conf` to lend the container while it runs. */
  resolver?: string;
}

/**
 * The container's network: none (`lxc.net.0.type = empty`), or a veth on the bridge with a static address LXC configures before
 * init starts — a minimal image has no DHCP client — chosen under a lock among the addresses no container of `lxcpath` uses.
 */
export async function planNetwork(mode: "none" | "bridge", bridge: string, lxcpath: string, configure: (net: Network) => Promise<void>) {
  if (mode === "none") return configure({ config: ["lxc.net.0.type = empty"] });
  const gateway = await bridgeAddress(bridge);
  if (gateway.prefix > 28 || gateway.prefix < 16)
    throw new KilnError("E_LAUNCH", `the bridge ${bridge} has a /${gateway.prefix} network`, { hint: "use a /16 to /28 bridge" });
  await withFileLock(join(lxcpath, ".kiln-addresses"), async () => {
    const address = pickAddress(gateway.address, gateway.prefix, await usedAddresses(lxcpath, gateway.address));
    await configure({
      config: [
        "lxc.net.0.type = veth",
        `lxc.net.0.link = ${bridge}`,
        "lxc.net.0.flags = up",
        `lxc.net.0.ipv4.address = ${address}/${gateway.prefix}`,
        `lxc.net.0.ipv4.gateway = ${gateway.address}`,
      ],
      address,
      resolver: `nameserver ${gateway.address}\n`,
    });
  });
}

async function usedAddresses(lxcpath: string, gateway: string): Promise<Set<string>> {
  const used = new Set([gateway]);
  for (const name of await readdir(lxcpath).catch(() => [] as string[])) {
    const config = await readFile(join(lxcpath, name, "config"), "utf8").catch(() => "");
    for (const match of config.matchAll(/^lxc\.net\.\d+\.ipv4\.address\s*=\s*(\d+\.\d+\.\d+\.\d+)/gm)) if (match[1]) used.add(match[1]);
  }
  // dnsmasq's leases on LXC's bridge: addresses other containers got by DHCP.
  const leases = await readFile("/var/lib/misc/dnsmasq.lxcbr0.leases", "utf8").catch(() => "");
  for (const line of leases.split("\n")) if (line.split(" ")[2]) used.add(line.split(" ")[2] as string);
  return used;
}

/** A free address in the upper half of the bridge's network (DHCP servers hand out the lower part first). */
function pickAddress(gateway: string, prefix: number, used: Set<string>): string {
  const toNumber = (ip: string) => ip.split(".").reduce((sum, part) => sum * 256 + Number(part), 0);
  const toIp = (n: number) => [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join(".");
  const size = 2 ** (32 - prefix);
  const network = toNumber(gateway) - (toNumber(gateway) % size);
  for (let attempt = 0; attempt < 200; attempt++) {
    const candidate = toIp(network + randomInt(Math.floor(size / 2), size - 1));
    if (!used.has(candidate)) return candidate;
  }
  throw new KilnError("E_LAUNCH", "no free address on the bridge", { hint: "remove stopped containers that hold addresses" });
}

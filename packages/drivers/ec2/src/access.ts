import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { connect } from "node:net";
import { resolve } from "node:path";
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateKeyPairCommand,
  CreateSecurityGroupCommand,
  DeleteKeyPairCommand,
  DeleteSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
} from "@aws-sdk/client-ec2";
import { KilnError, type BakeContext } from "@kiln/core";
import { type Ec2Api, isNotFound } from "./api.js";
import { once } from "./once.js";
import type { Ec2Options } from "./options.js";
import { tagSpecs } from "./tags.js";

/** How Kiln logs in to an instance and which security groups let it in. */
export interface Access {
  keyName: string;
  privateKey: string;
  securityGroupIds: string[];
  /**
   * Deletes the temporary key pair and security group (nothing for the user's own), once the instance using them has
   * terminated. The deferred cleanups wait for a release under way, or find it done; a failed one is tried again by them.
   */
  release(signal?: AbortSignal): Promise<void>;
}

/** `kiln-<run id>-<image>-<role>-<4 hex>`: findable by run id, unique when images or verify scenarios of one run launch together. */
export function resourceName(ctx: BakeContext, role: string): string {
  return `kiln-${ctx.runId}-${ctx.image.replace(/[^A-Za-z0-9_.-]/g, "-")}-${role}-${randomBytes(2).toString("hex")}`;
}

/**
 * The key pair and security groups an instance needs: the user's, or temporary ones (an ed25519 key pair and a group allowing
 * only the SSH port from this machine) named like the instance and tagged with the run id. Cleanups are registered as each is
 * created, so they run after the instance's (registered later) has terminated it — the group cannot go before the instance.
 */
export async function prepareAccess(
  api: Ec2Api,
  ctx: BakeContext,
  opts: Ec2Options,
  name: string,
  extraPorts: number[] = [],
): Promise<Access> {
  const tags = { ...ctx.resourceLabels, Name: name };
  const signal = ctx.signal;
  let keyName: string;
  let privateKey: string;
  const calls = (signal?: AbortSignal) => (signal ? api.withSignal(signal) : api);
  let removeKeyPair: ((signal?: AbortSignal) => Promise<void>) | undefined;
  if (opts.key_pair) {
    keyName = opts.key_pair.name;
    privateKey = await readPrivateKey(await ctx.hostPath(opts.key_pair.private_key_file, "read"));
  } else {
    // Registered before the call: a Ctrl-C while CreateKeyPair is in flight may leave a key pair whose answer never came.
    const remove = once((signal) => deleteKeyPair(calls(signal), name));
    removeKeyPair = remove;
    ctx.defer((signal) => remove(signal), {
      resource: `key pair ${name}`,
      manualCommand: `aws ec2 delete-key-pair --region ${api.region} --key-name ${name}`,
    });
    const created = await api.call(
      "CreateKeyPair",
      (client, http) =>
        client.send(
          new CreateKeyPairCommand({
            KeyName: name,
            KeyType: "ed25519",
            KeyFormat: "pem",
            TagSpecifications: tagSpecs(["key-pair", tags]),
          }),
          http,
        ),
      { signal },
    );
    keyName = name;
    privateKey = created.KeyMaterial ?? "";
  }
  if (opts.security_group_ids) {
    return { keyName, privateKey, securityGroupIds: opts.security_group_ids, release: async (signal) => removeKeyPair?.(signal) };
  }

  const cidrs = opts.ssh_allowed_cidrs ?? [await callerCidr(opts.endpoint)];
  let groupId: string | undefined;
  // Registered before the call, like the key pair's; without the id (the answer never came) the group is found by its name.
  const removeGroup = once((signal) => deleteSecurityGroup(calls(signal), groupId, name));
  ctx.defer((signal) => removeGroup(signal), {
    resource: `security group ${name}`,
    manualCommand: `aws ec2 delete-security-group --region ${api.region} --group-name ${name}`,
  });
  const group = await api.call(
    "CreateSecurityGroup",
    (client, http) =>
      client.send(
        new CreateSecurityGroupCommand({
          GroupName: name,
          Description: `Kiln: SSH for ${ctx.image} (run ${ctx.runId}) from ${cidrs.join(", ")}`,
          ...(opts.vpc_id ? { VpcId: opts.vpc_id } : {}),
          TagSpecifications: tagSpecs(["security-group", tags]),
        }),
        http,
      ),
    { signal },
  );
  groupId = group.GroupId ?? "";
  const port = opts.ssh_port ?? 22;
  await api.call(
    "AuthorizeSecurityGroupIngress",
    (client, http) =>
      client.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: groupId,
          // SSH, and for a verify machine the ports its checks reach from here.
          IpPermissions: [port, ...extraPorts].map((open) => ({
            IpProtocol: "tcp",
            FromPort: open,
            ToPort: open,
            IpRanges: cidrs.map((CidrIp) => ({ CidrIp, Description: "Kiln" })),
          })),
        }),
        http,
      ),
    { signal, notYet: ["InvalidGroup.NotFound"] },
  );
  const release = async (signal?: AbortSignal) => {
    await Promise.all([removeGroup(signal), removeKeyPair?.(signal)]);
  };
  return { keyName, privateKey, securityGroupIds: [groupId], release };
}

async function readPrivateKey(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new KilnError("E_CONFIG", `cannot read key_pair.private_key_file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function deleteKeyPair(api: Ec2Api, keyName: string): Promise<void> {
  await api.call("DeleteKeyPair", (client) => client.send(new DeleteKeyPairCommand({ KeyName: keyName })), { code: "E_CLEANUP" });
}

/**
 * A group stays "in use" until its instances have terminated: DependencyViolation is retried until the API deadline, or
 * until the cleanup's time is up (an instance that could not be terminated keeps it in use for good).
 */
async function deleteSecurityGroup(api: Ec2Api, knownId: string | undefined, name: string): Promise<void> {
  const groupId = knownId ?? (await findGroupId(api, name));
  if (!groupId) return;
  try {
    await api.call("DeleteSecurityGroup", (client) => client.send(new DeleteSecurityGroupCommand({ GroupId: groupId })), {
      code: "E_CLEANUP",
      notYet: ["DependencyViolation", "InvalidGroup.InUse"],
    });
  } catch (error) {
    if (!isNotFound((error as Error).cause)) throw error;
  }
}

async function findGroupId(api: Ec2Api, name: string): Promise<string | undefined> {
  const found = await api.call(
    "DescribeSecurityGroups",
    (client) => client.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: [name] }] })),
    { code: "E_CLEANUP" },
  );
  return found.SecurityGroups?.[0]?.GroupId;
}

/**
 * This machine's address as the instance will see it, as a /32. With an endpoint override (a private endpoint, an emulator)
 * that is the local address of a connection to the endpoint; on AWS it is the public address, asked of checkip.amazonaws.com
 * as Packer does (behind several NATs, set ssh_allowed_cidrs instead).
 */
async function callerCidr(endpoint: string | undefined): Promise<string> {
  try {
    if (endpoint) return `${await localAddressTowards(new URL(endpoint))}/32`;
    const response = await fetch("https://checkip.amazonaws.com", { signal: AbortSignal.timeout(10_000) });
    const address = (await response.text()).trim();
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(address)) throw new Error(`unexpected answer "${address.slice(0, 40)}"`);
    return `${address}/32`;
  } catch (error) {
    throw new KilnError("E_LAUNCH", `cannot find this machine's address for the temporary security group: ${(error as Error).message}`, {
      hint: 'set ssh_allowed_cidrs: ["<your address>/32"] (or security_group_ids)',
      cause: error,
    });
  }
}

function localAddressTowards(url: URL): Promise<string> {
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  return new Promise((done, fail) => {
    const socket = connect({ host: url.hostname, port, timeout: 10_000 });
    socket.once("connect", () => {
      const address = socket.localAddress ?? "";
      socket.destroy();
      done(address.replace(/^::ffff:/, ""));
    });
    socket.once("timeout", () => socket.destroy(new Error(`no answer from ${url.host}`)));
    socket.once("error", fail);
  });
}

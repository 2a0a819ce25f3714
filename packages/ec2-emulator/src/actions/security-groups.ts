import type { EmulatorContext } from "../context.js";
import { Ec2Error, missingParameter, notFound } from "../errors.js";
import { matchesFilters, type QueryParams } from "../query.js";
import { ACCOUNT_ID, type IngressRule, newId, type SecurityGroupRecord, tagSet, VPC_ID } from "../state.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

export const CreateSecurityGroup: ActionHandler = (ctx, params) => {
  const groupName = params.require("GroupName");
  const description = params.require("GroupDescription");
  const vpcId = params.optional("VpcId") ?? VPC_ID;
  for (const group of ctx.state.securityGroups.values()) {
    if (group.groupName === groupName && group.vpcId === vpcId)
      throw new Ec2Error("InvalidGroup.Duplicate", `The security group '${groupName}' already exists for VPC '${vpcId}'`);
  }
  const group: SecurityGroupRecord = {
    groupId: newId("sg"),
    groupName,
    description,
    vpcId,
    ingress: [],
    tags: params.tagSpecifications("security-group"),
  };
  ctx.state.securityGroups.set(group.groupId, group);
  return fields({ return: true, groupId: group.groupId, tagSet: set(tagSet(group.tags)) });
};

/** The group named by GroupId or GroupName; NotFound as EC2 answers it. */
export function findGroup(ctx: EmulatorContext, params: QueryParams): SecurityGroupRecord {
  const id = params.get("GroupId");
  const name = params.get("GroupName");
  if (!id && !name) throw missingParameter("GroupId");
  const group = id ? ctx.state.securityGroups.get(id) : [...ctx.state.securityGroups.values()].find((g) => g.groupName === name);
  if (!group) throw notFound("group", id ?? name ?? "");
  return group;
}

/** Reads `IpPermissions.N` (protocol, ports, IpRanges.M.CidrIp); the older flat form (IpProtocol, FromPort, CidrIp) too. */
function ingressRules(params: QueryParams): IngressRule[] {
  const rules: IngressRule[] = params.indices("IpPermissions").map((index) => {
    const prefix = `IpPermissions.${index}`;
    const fromPort = params.int(`${prefix}.FromPort`);
    const toPort = params.int(`${prefix}.ToPort`);
    return {
      ipProtocol: params.get(`${prefix}.IpProtocol`) ?? "-1",
      ...(fromPort === undefined ? {} : { fromPort }),
      ...(toPort === undefined ? {} : { toPort }),
      cidrs: params.indices(`${prefix}.IpRanges`).map((range) => params.get(`${prefix}.IpRanges.${range}.CidrIp`) ?? ""),
    };
  });
  const protocol = params.get("IpProtocol");
  if (protocol) {
    const fromPort = params.int("FromPort");
    const toPort = params.int("ToPort");
    rules.push({
      ipProtocol: protocol,
      ...(fromPort === undefined ? {} : { fromPort }),
      ...(toPort === undefined ? {} : { toPort }),
      cidrs: [params.get("CidrIp") ?? "0.0.0.0/0"],
    });
  }
  if (rules.length === 0) throw missingParameter("IpPermissions");
  return rules;
}

const sameRule = (a: IngressRule, b: IngressRule): boolean =>
  a.ipProtocol === b.ipProtocol && a.fromPort === b.fromPort && a.toPort === b.toPort && a.cidrs.some((cidr) => b.cidrs.includes(cidr));

export const AuthorizeSecurityGroupIngress: ActionHandler = (ctx, params) => {
  const group = findGroup(ctx, params);
  const rules = ingressRules(params);
  for (const rule of rules) {
    if (group.ingress.some((existing) => sameRule(existing, rule))) {
      throw new Ec2Error(
        "InvalidPermission.Duplicate",
        `the specified rule "peer: ${rule.cidrs.join(",")}, ${rule.ipProtocol.toUpperCase()}, from port: ${rule.fromPort}, to port: ${rule.toPort}, ALLOW" already exists`,
      );
    }
  }
  group.ingress.push(...rules);
  const ruleSet = rules.flatMap((rule) =>
    rule.cidrs.map((cidr) => ({
      securityGroupRuleId: newId("sgr"),
      groupId: group.groupId,
      groupOwnerId: ACCOUNT_ID,
      isEgress: false,
      ipProtocol: rule.ipProtocol,
      fromPort: rule.fromPort,
      toPort: rule.toPort,
      cidrIpv4: cidr,
    })),
  );
  return fields({ return: true, securityGroupRuleSet: set(ruleSet) });
};

export const DescribeSecurityGroups: ActionHandler = (ctx, params) => {
  const ids = params.list("GroupId");
  const names = params.list("GroupName");
  for (const id of ids) if (!ctx.state.securityGroups.has(id)) throw notFound("group", id);
  const filters = params.filters();
  const selected = [...ctx.state.securityGroups.values()].filter(
    (g) =>
      (ids.length === 0 || ids.includes(g.groupId)) &&
      (names.length === 0 || names.includes(g.groupName)) &&
      matchesFilters(
        filters,
        g.tags,
        (name) =>
          ({
            "group-id": [g.groupId],
            "group-name": [g.groupName],
            "vpc-id": [g.vpcId],
            description: [g.description],
            "owner-id": [ACCOUNT_ID],
          })[name],
      ),
  );
  return fields({
    securityGroupInfo: set(
      selected.map((g) => ({
        ownerId: ACCOUNT_ID,
        groupName: g.groupName,
        groupId: g.groupId,
        groupDescription: g.description,
        ipPermissions: set(
          g.ingress.map((rule) => ({
            ipProtocol: rule.ipProtocol,
            fromPort: rule.fromPort,
            toPort: rule.toPort,
            groups: set([]),
            ipRanges: set(rule.cidrs.map((cidrIp) => ({ cidrIp }))),
          })),
        ),
        ipPermissionsEgress: set([{ ipProtocol: "-1", groups: set([]), ipRanges: set([{ cidrIp: "0.0.0.0/0" }]) }]),
        vpcId: g.vpcId,
        tagSet: set(tagSet(g.tags)),
      })),
    ),
  });
};

/** Refused with DependencyViolation while an instance that is not yet terminated uses the group, as on EC2. */
export const DeleteSecurityGroup: ActionHandler = (ctx, params) => {
  const group = findGroup(ctx, params);
  const user = [...ctx.state.instances.values()].find((i) => i.state !== "terminated" && i.groupIds.includes(group.groupId));
  if (user) throw new Ec2Error("DependencyViolation", `resource ${group.groupId} has a dependent object`);
  ctx.state.securityGroups.delete(group.groupId);
  return fields({ return: true, groupId: group.groupId });
};

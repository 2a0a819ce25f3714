import { Ec2Error } from "../errors.js";
import type { QueryParams } from "../query.js";
import type { ImageRecord, LaunchPermissions } from "../state.js";
import { fields, set } from "../xml.js";
import { ownImage } from "./images-write.js";
import type { ActionHandler } from "./types.js";

/** Shapes of AWS Organizations ARNs, loose on the ids: enough to catch an org id or account id passed where an ARN belongs. */
const ORGANIZATION_ARN = /^arn:aws[\w-]*:organizations::\d{12}:organization\/o-[a-z0-9]+$/;
const ORGANIZATIONAL_UNIT_ARN = /^arn:aws[\w-]*:organizations::\d{12}:ou\/o-[a-z0-9]+\/ou-[a-z0-9-]+$/;

function checkArn(value: string, pattern: RegExp, parameter: string): string {
  if (!pattern.test(value)) throw new Ec2Error("InvalidParameterValue", `Value (${value}) for parameter ${parameter} is invalid`);
  return value;
}

/** One launch permission entry to add or remove: the EC2 LaunchPermission shape. */
interface PermissionChange {
  userIds: string[];
  groups: string[];
  organizationArns: string[];
  organizationalUnitArns: string[];
}

function applyChange(image: ImageRecord, change: PermissionChange, add: boolean): void {
  const edit = (list: string[], values: string[]) =>
    add ? [...new Set([...list, ...values])] : list.filter((value) => !values.includes(value));
  const permissions: LaunchPermissions = image.launchPermissions;
  permissions.userIds = edit(permissions.userIds, change.userIds);
  permissions.organizationArns = edit(permissions.organizationArns, change.organizationArns);
  permissions.organizationalUnitArns = edit(permissions.organizationalUnitArns, change.organizationalUnitArns);
  if (change.groups.includes("all")) image.isPublic = add;
}

/** `LaunchPermission.Add.N.{UserId,Group,OrganizationArn,OrganizationalUnitArn}` (and `.Remove.N`). */
function structuredChange(params: QueryParams, prefix: string): PermissionChange {
  const change: PermissionChange = { userIds: [], groups: [], organizationArns: [], organizationalUnitArns: [] };
  for (const index of params.indices(prefix)) {
    const entry = (field: string) => params.get(`${prefix}.${index}.${field}`);
    const userId = entry("UserId");
    const group = entry("Group");
    const organizationArn = entry("OrganizationArn");
    const organizationalUnitArn = entry("OrganizationalUnitArn");
    if (userId !== undefined) change.userIds.push(userId);
    if (group !== undefined) change.groups.push(group);
    if (organizationArn !== undefined) change.organizationArns.push(checkArn(organizationArn, ORGANIZATION_ARN, "OrganizationArn"));
    if (organizationalUnitArn !== undefined)
      change.organizationalUnitArns.push(checkArn(organizationalUnitArn, ORGANIZATIONAL_UNIT_ARN, "OrganizationalUnitArn"));
  }
  return change;
}

export const ModifyImageAttribute: ActionHandler = (ctx, params) => {
  const image = ownImage(ctx, params.require("ImageId"));
  const description = params.get("Description.Value");
  if (description !== undefined) image.description = description;
  applyChange(image, structuredChange(params, "LaunchPermission.Add"), true);
  applyChange(image, structuredChange(params, "LaunchPermission.Remove"), false);
  // The older flat form: Attribute=launchPermission, OperationType=add|remove, UserId.N, UserGroup.N, OrganizationArn.N, …
  const flat: PermissionChange = {
    userIds: params.list("UserId"),
    groups: params.list("UserGroup"),
    organizationArns: params.list("OrganizationArn").map((arn) => checkArn(arn, ORGANIZATION_ARN, "OrganizationArn")),
    organizationalUnitArns: params
      .list("OrganizationalUnitArn")
      .map((arn) => checkArn(arn, ORGANIZATIONAL_UNIT_ARN, "OrganizationalUnitArn")),
  };
  applyChange(image, flat, params.get("OperationType") !== "remove");
  return fields({ return: true });
};

export const DescribeImageAttribute: ActionHandler = (ctx, params) => {
  const image = ownImage(ctx, params.require("ImageId"));
  const attribute = params.require("Attribute");
  if (attribute === "launchPermission") {
    const { userIds, organizationArns, organizationalUnitArns } = image.launchPermissions;
    const permissions = [
      ...userIds.map((userId) => ({ userId })),
      ...(image.isPublic ? [{ group: "all" }] : []),
      ...organizationArns.map((organizationArn) => ({ organizationArn })),
      ...organizationalUnitArns.map((organizationalUnitArn) => ({ organizationalUnitArn })),
    ];
    return fields({ imageId: image.imageId, launchPermission: set(permissions) });
  }
  if (attribute === "description") return fields({ imageId: image.imageId, description: { value: image.description } });
  throw new Ec2Error(
    "InvalidParameterValue",
    `Value (${attribute}) for parameter attribute is invalid. Supported: launchPermission, description`,
  );
};

/** `DeprecateAt` must lie in the future; like EC2, seconds are rounded to the nearest minute. */
export const EnableImageDeprecation: ActionHandler = (ctx, params) => {
  const image = ownImage(ctx, params.require("ImageId"));
  const deprecateAt = params.require("DeprecateAt");
  const time = Date.parse(deprecateAt);
  if (Number.isNaN(time)) throw new Ec2Error("InvalidParameterValue", `Value (${deprecateAt}) for parameter DeprecateAt is invalid`);
  if (time <= Date.now())
    throw new Ec2Error(
      "InvalidParameterValue",
      `Value (${deprecateAt}) for parameter DeprecateAt is invalid. The deprecation time must be in the future`,
    );
  image.deprecationTime = new Date(Math.round(time / 60_000) * 60_000);
  return fields({ return: true });
};

export const DisableImageDeprecation: ActionHandler = (ctx, params) => {
  const image = ownImage(ctx, params.require("ImageId"));
  image.deprecationTime = undefined;
  return fields({ return: true });
};

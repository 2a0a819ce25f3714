import { Ec2Error } from "./errors.js";

/** EC2's limits on user tags: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#tag-restrictions */
export const MAX_TAGS_PER_RESOURCE = 50;
const MAX_KEY_LENGTH = 128;
const MAX_VALUE_LENGTH = 256;

/** Refuses a tag EC2 would refuse: key 1–128 characters and not `aws:…` (reserved), value at most 256 characters. */
export function checkTag(key: string, value: string): void {
  // EC2 counts characters, not UTF-16 code units.
  const keyLength = [...key].length;
  if (keyLength === 0) throw new Ec2Error("InvalidParameterValue", "Tag key cannot be empty");
  if (keyLength > MAX_KEY_LENGTH)
    throw new Ec2Error("InvalidParameterValue", `Tag key exceeds the maximum length of ${MAX_KEY_LENGTH} characters`);
  if (key.toLowerCase().startsWith("aws:"))
    throw new Ec2Error(
      "InvalidParameterValue",
      `Value ( ${key} ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use`,
    );
  if ([...value].length > MAX_VALUE_LENGTH)
    throw new Ec2Error("InvalidParameterValue", `Tag value exceeds the maximum length of ${MAX_VALUE_LENGTH} characters`);
}

/** Refuses a resource that would carry more than 50 tags. */
export function checkTagCount(tags: Record<string, string>): void {
  if (Object.keys(tags).length > MAX_TAGS_PER_RESOURCE)
    throw new Ec2Error("TagLimitExceeded", "The maximum number of Tags for a resource has been reached.");
}

import { DescribeImageAttribute, DisableImageDeprecation, EnableImageDeprecation, ModifyImageAttribute } from "./image-attributes.js";
import { DescribeImages } from "./images.js";
import { CopyImage, CreateImage, DeregisterImage } from "./images-write.js";
import { DescribeInstances, RunInstances, TerminateInstances } from "./instances.js";
import { CreateKeyPair, DeleteKeyPair, DescribeKeyPairs, ImportKeyPair } from "./key-pairs.js";
import { AuthorizeSecurityGroupIngress, CreateSecurityGroup, DeleteSecurityGroup, DescribeSecurityGroups } from "./security-groups.js";
import { DeleteSnapshot, DescribeSnapshots } from "./snapshots.js";
import { DescribeRegions } from "./regions.js";
import { StartInstances, StopInstances } from "./stop-start.js";
import { CreateTags, DeleteTags, DescribeTags } from "./tags.js";
import type { ActionHandler } from "./types.js";
import { DeleteVolume, DescribeVolumes } from "./volumes.js";

/** Every action the emulator answers; any other answers InvalidAction, so a missing one is obvious in a test. */
export const ACTIONS: Record<string, ActionHandler> = {
  CreateKeyPair,
  ImportKeyPair,
  DescribeKeyPairs,
  DeleteKeyPair,
  CreateSecurityGroup,
  AuthorizeSecurityGroupIngress,
  DescribeSecurityGroups,
  DeleteSecurityGroup,
  DescribeImages,
  CreateImage,
  CopyImage,
  DeregisterImage,
  ModifyImageAttribute,
  DescribeImageAttribute,
  EnableImageDeprecation,
  DisableImageDeprecation,
  DescribeSnapshots,
  DeleteSnapshot,
  DescribeVolumes,
  DeleteVolume,
  DescribeRegions,
  RunInstances,
  DescribeInstances,
  StopInstances,
  StartInstances,
  TerminateInstances,
  CreateTags,
  DeleteTags,
  DescribeTags,
};

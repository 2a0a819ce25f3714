import { defineDriver } from "@kiln/core";
import { lazyDriver } from "@kiln/core/kit";
import { type Ec2Options, ec2OptionsSchema } from "./options.js";

// The AWS SDK takes ~300 ms to load: only a command that calls EC2 pays for it.
export const ec2 = defineDriver<Ec2Options>(() =>
  lazyDriver(
    {
      name: "ec2",
      schema: ec2OptionsSchema,
      // Runtime inputs travel as user data, as in a deployment; asked-for ports are opened to this host on the instance's address.
      runtimeSupport: { bootScript: true, userData: true, hostPorts: true },
      connectionKinds: ["ssh"],
      // A tag becomes the AMI tag key kiln:ref:<tag>, which EC2 caps at 128 characters.
      checkTag: (tag) => (`kiln:ref:${tag}`.length > 128 ? "EC2 tag keys hold at most 128 characters (kiln:ref: and the tag)" : undefined),
      hostPaths: (opts) => [
        ...(opts.user_data_file !== undefined ? [{ path: ["user_data_file"], value: opts.user_data_file, access: "read" as const }] : []),
        ...(opts.key_pair
          ? [{ path: ["key_pair", "private_key_file"], value: opts.key_pair.private_key_file, access: "read" as const }]
          : []),
      ],
      exposedOptions: [
        { path: ["ami_name"], where: "the AMI's name (anyone who can describe it sees it)" },
        { path: ["ami_description"], where: "the AMI's description (anyone who can describe it sees it)" },
        { path: ["ami_tags"], where: "the AMI's tags (anyone who can describe it sees them)" },
        { path: ["snapshot_tags"], where: "the snapshots' tags (anyone who can describe them sees them)" },
        { path: ["run_tags"], where: "the instances' tags (anyone who can describe them sees them)" },
      ],
    },
    () => import("./bake.js").then((module) => module.ec2Operations()),
  ),
);

export default ec2;

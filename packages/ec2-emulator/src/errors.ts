/** An error EC2 would answer with: its code, message and HTTP status (400 client error, 503 throttling, 500 internal). */
export class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = "Ec2Error";
  }
}

export const notFound = (kind: string, id: string): Ec2Error => {
  const codes: Record<string, string> = {
    instance: "InvalidInstanceID.NotFound",
    keyPair: "InvalidKeyPair.NotFound",
    group: "InvalidGroup.NotFound",
    image: "InvalidAMIID.NotFound",
    snapshot: "InvalidSnapshot.NotFound",
  };
  const messages: Record<string, string> = {
    instance: `The instance ID '${id}' does not exist`,
    keyPair: `The key pair '${id}' does not exist`,
    group: `The security group '${id}' does not exist`,
    image: `The image id '[${id}]' does not exist`,
    snapshot: `The snapshot '${id}' does not exist.`,
  };
  return new Ec2Error(codes[kind] ?? "InvalidParameterValue", messages[kind] ?? `${kind} '${id}' does not exist`);
};

export const missingParameter = (name: string): Ec2Error =>
  new Ec2Error("MissingParameter", `The request must contain the parameter ${name}`);

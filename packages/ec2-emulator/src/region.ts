import { REGION } from "./state.js";

/**
 * The region a request was signed for: the third field of the SigV4 credential scope, `AKID/20261127/us-west-2/ec2/aws4_request`,
 * from the `Authorization` header or (presigned requests) the `X-Amz-Credential` parameter. Signatures are not checked, so the
 * scope is all the emulator learns of the client's region — the endpoint is the same for every region.
 */
export function requestRegion(authorization: string | undefined, credentialParam: string | undefined): string {
  const scope = /Credential=([^,\s]+)/.exec(authorization ?? "")?.[1] ?? credentialParam;
  const region = scope?.split("/")[2];
  return region || REGION;
}

import { z } from "@kiln/core";

/** A `{ debootstrap: … }` source in a driver's options: one spelling, with editor hints, for every driver that takes one. */
export const debootstrapRecipeSchema = z.strictObject({
  suite: z.string().min(1).describe('Debian suite, e.g. "bookworm".'),
  variant: z.enum(["minbase", "buildd", "fakechroot", "standard"]).optional().describe('debootstrap variant. Default "minbase".'),
  include: z.array(z.string()).optional().describe('Extra packages, e.g. ["python3"].'),
  components: z.array(z.string()).optional().describe('Archive components. Default ["main"].'),
  mirror: z.string().url().optional().describe("Mirror URL. Default: the first Debian mirror in the host's apt sources."),
});

import { z } from "zod";
import { isDurationString } from "../duration.js";

export const durationSchema = z
  .union([z.number().nonnegative(), z.string().refine(isDurationString, { message: 'expected a duration like "30s" or "5m"' })])
  .describe('Seconds, or a duration such as "30s", "5m", "1h30m".');

import type { EmulatorContext } from "../context.js";
import type { QueryParams } from "../query.js";

/** An action handler returns the response body (the elements inside `<ActionResponse>` after `<requestId>`). */
export type ActionHandler = (ctx: EmulatorContext, params: QueryParams) => string | Promise<string>;

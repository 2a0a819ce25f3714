import type { RequestContext } from "../context.js";
import type { QueryParams } from "../query.js";

/** An action handler returns the response body (the elements inside `<ActionResponse>` after `<requestId>`). */
export type ActionHandler = (ctx: RequestContext, params: QueryParams) => string | Promise<string>;

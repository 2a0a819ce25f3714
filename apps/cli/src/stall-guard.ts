import { KilnError } from "@kiln/core";

/**
 * If Node's event loop runs dry while a bake is still waiting (a bug: some step awaits a promise nothing will settle), Node
 * would exit 0 and leave machines behind. Instead, abort the run: its cleanups then run, and the command exits 1.
 */
export function stallGuard(controller: AbortController): { readonly fired: boolean; dispose(): void } {
  const state = { fired: false };
  const onBeforeExit = () => {
    if (controller.signal.aborted) return;
    state.fired = true;
    controller.abort(
      new KilnError("E_INTERNAL", "kiln stopped making progress (a step is waiting for something that will not happen)", {
        hint: "this is a bug in Kiln or a plugin; please report it with the output of --json",
      }),
    );
  };
  process.on("beforeExit", onBeforeExit);
  return {
    get fired() {
      return state.fired;
    },
    dispose: () => process.off("beforeExit", onBeforeExit),
  };
}

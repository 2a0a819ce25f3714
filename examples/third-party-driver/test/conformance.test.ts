import { testDriver } from "@kiln/test-suite";
import unshare from "../src/index.js";
import { listUnshareResources } from "./leftovers.js";

// The recipe the quickstart and the first-party tests use: @kiln/debootstrap builds the tree once, keyed, and every run reuses it.
testDriver("unshare", {
  factory: unshare,
  options: { source: { debootstrap: { suite: "bookworm", variant: "minbase", include: ["python3"] } } },
  listResources: listUnshareResources,
});

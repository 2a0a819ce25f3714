import { testDriver } from "@kiln/test-suite";
import chroot from "../src/index.js";
import { listChrootResources } from "../src/testing.js";

// The same recipe as the Docker driver's test fixture: @kiln/debootstrap builds the tree once and both drivers use it.
testDriver("chroot", {
  factory: chroot,
  options: { source: { debootstrap: { suite: "bookworm", variant: "minbase", include: ["python3"] } } },
  listResources: listChrootResources,
});

import { testDriver } from "@kiln/test-suite";
import lxc from "../src/index.js";
import { listLxcResources } from "../src/testing.js";
import { SYSTEM_SOURCE } from "./fixture.js";

// Real system containers on LXC's bridge (scripts/prepare-lxc.sh starts lxcbr0 and opens Docker's FORWARD DROP for it).
testDriver("lxc", { factory: lxc, options: { source: SYSTEM_SOURCE }, listResources: listLxcResources, timeout: 240_000 });

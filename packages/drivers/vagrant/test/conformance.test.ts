import { testDriver } from "@kiln/test-suite";
import vagrant from "../src/index.js";
import { listVagrantResources } from "../src/testing.js";
import { BASE_SOURCE } from "./fixture.js";

// Real VMs through vagrant-libvirt, under QEMU's software emulation where KVM cannot run guests (auto-detected).
testDriver("vagrant", { factory: vagrant, options: { source: BASE_SOURCE }, listResources: listVagrantResources, timeout: 900_000 });

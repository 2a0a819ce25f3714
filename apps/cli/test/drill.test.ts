import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtureImage, FIXTURE_IMAGE, listDockerResources, removeDockerResources } from "@kiln/driver-docker/testing";
import { kiln, project, runIdOf } from "./helpers.js";

const runs: string[] = [];
afterEach(async () => {
  for (const runId of runs.splice(0)) await removeDockerResources(runId);
});

beforeAll(async () => {
  await ensureFixtureImage();
}, 600_000);

/** A parent and a child image, each with a provision step and a verify check: every step of a bake, twice. */
const BAKE_FILE = `
images:
  base:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["echo base > /etc/kiln-drill"] }
    verify: { checks: [{ file: { path: /etc/kiln-drill, contains: base } }] }
  child:
    driver: docker
    from: base
    provision:
      - shell: { inline: ["echo child >> /etc/kiln-drill"] }
    verify: { checks: [{ file: { path: /etc/kiln-drill, contains: child } }] }
`;

describe("the Ctrl-C drill", () => {
  // One SIGINT at each of 20 moments spread over a whole two-image bake (loading, launch, provision, capture, verify, tag of
  // both images): whatever step it lands in, the bake must end 130 and leave no container and no image behind.
  it("leaves nothing behind in 20 interrupts of a two-image Docker bake", { timeout: 600_000 }, async () => {
    await using dir = await project({ "kiln.yaml": BAKE_FILE });
    const started = Date.now();
    const whole = await kiln(["build", "--force", "-C", dir.dir]);
    runs.push(runIdOf(whole.stdout, whole.stderr));
    expect(whole.code, whole.stdout + whole.stderr).toBe(0);
    const duration = Date.now() - started;

    const outcomes: { at: number; code: number | null; left: string[] }[] = [];
    for (let slot = 0; slot < 20; slot++) {
      const at = Math.round((duration * (slot + 0.5)) / 20);
      const run = await kiln(["build", "--force", "-C", dir.dir], {
        onStart: (child) => setTimeout(() => child.kill("SIGINT"), at),
      });
      // Interrupted while kiln was still loading, before the run started (and printed its id): nothing was created.
      const code = run.signal === "SIGINT" ? 130 : run.code;
      if (!/kiln build \S+:/.test(run.stdout)) {
        outcomes.push({ at, code, left: [] });
        continue;
      }
      const runId = runIdOf(run.stdout, run.stderr);
      runs.push(runId);
      // An image baked before the signal (the parent, when the child is interrupted; both, when the signal came after the
      // run) is an artefact the run reports, not a leak; everything else must be gone.
      const baked = [...run.stdout.matchAll(/^(?:base|child): (sha256:\S+)/gm)].map((match) => `image ${match[1]}`);
      const left = (await listDockerResources(runId)).filter((resource) => !baked.includes(resource));
      outcomes.push({ at, code, left });
    }
    const report = outcomes
      .map((outcome) => `SIGINT at ${outcome.at}ms: exit ${outcome.code}, left ${outcome.left.join(", ") || "nothing"}`)
      .join("\n");
    console.log(`Ctrl-C drill:\n${report}`);
    for (const outcome of outcomes) expect([0, 130], report).toContain(outcome.code);
    expect(
      outcomes.filter((outcome) => outcome.left.length > 0),
      report,
    ).toEqual([]);
    // The drill only means something if most signals landed inside bakes.
    expect(outcomes.filter((outcome) => outcome.code === 130 && outcome.left.length === 0).length, report).toBeGreaterThanOrEqual(10);
  });
});

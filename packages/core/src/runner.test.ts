import { describe, expect, it } from "vitest";
import type { ImageSpec } from "./config/load.js";
import { KilnError } from "./errors.js";
import { newRunId, selectImages, untilAborted } from "./runner.js";

/** selectImages reads only names and parents; the rest of an ImageSpec does not matter here. */
function image(name: string, from?: string): ImageSpec {
  return { name, ...(from === undefined ? {} : { from }) } as ImageSpec;
}

// base ← web ← web-debug
//      ← api
// tools (no parent)
const images = [image("base"), image("web", "base"), image("api", "base"), image("web-debug", "web"), image("tools")];
const names = (selected: ImageSpec[]) => selected.map((item) => item.name);

describe("selectImages", () => {
  it("selects every image, in the given order, without filters", () => {
    expect(names(selectImages(images))).toEqual(["base", "web", "api", "web-debug", "tools"]);
  });

  it("treats empty filters as no filters", () => {
    expect(names(selectImages(images, [], []))).toEqual(["base", "web", "api", "web-debug", "tools"]);
  });

  it("adds the ancestors of the images asked for with only", () => {
    expect(names(selectImages(images, ["web-debug"]))).toEqual(["base", "web", "web-debug"]);
  });

  it("does not add children or siblings of the images asked for with only", () => {
    expect(names(selectImages(images, ["web"]))).toEqual(["base", "web"]);
  });

  it("keeps dependency order when only names children before parents", () => {
    expect(names(selectImages(images, ["tools", "api"]))).toEqual(["base", "api", "tools"]);
  });

  it("removes the images named in except and all their descendants", () => {
    expect(names(selectImages(images, undefined, ["web"]))).toEqual(["base", "api", "tools"]);
  });

  it("removes everything built on a base that is excepted", () => {
    expect(names(selectImages(images, undefined, ["base"]))).toEqual(["tools"]);
  });

  it("applies except after only", () => {
    expect(names(selectImages(images, ["web-debug", "api"], ["web"]))).toEqual(["base", "api"]);
  });

  it.each([
    ["only", ["wbe"], undefined],
    ["except", undefined, ["wbe"]],
  ])("refuses an unknown image name in %s, listing the known ones", (_flag, only, except) => {
    let error: unknown;
    try {
      selectImages(images, only, except);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({
      code: "E_CONFIG",
      exitCode: 2,
      message: 'no image named "wbe"',
      hint: "images in this bake file: base, web, api, web-debug, tools",
    });
  });
});

describe("untilAborted", () => {
  it("resolves with the work's value", async () => {
    await expect(untilAborted(Promise.resolve("done"), new AbortController().signal)).resolves.toBe("done");
  });

  it("rejects with the work's error", async () => {
    await expect(untilAborted(Promise.reject(new Error("launch failed")), new AbortController().signal)).rejects.toThrow("launch failed");
  });

  it("rejects as soon as the signal aborts, even if the work never settles", async () => {
    const controller = new AbortController();
    const stuck = new Promise<never>(() => {});
    const racing = untilAborted(stuck, controller.signal);
    controller.abort(new Error("interrupted"));
    await expect(racing).rejects.toThrow("interrupted");
  });

  it("rejects at once when the signal is already aborted", async () => {
    const work = Promise.resolve("too late");
    await expect(untilAborted(work, AbortSignal.abort(new Error("already stopped")))).rejects.toThrow("already stopped");
  });

  it("turns an abort reason that is not an Error into an Error", async () => {
    const controller = new AbortController();
    const racing = untilAborted(new Promise<never>(() => {}), controller.signal);
    controller.abort("SIGINT");
    await expect(racing).rejects.toThrow(new Error("SIGINT"));
  });
});

describe("newRunId", () => {
  it("starts with the UTC date and time, then six hex digits", () => {
    expect(newRunId(new Date("2026-11-27T06:29:13.456Z"))).toMatch(/^20261127-0629-[0-9a-f]{6}$/);
  });

  it("differs between runs started in the same minute", () => {
    const now = new Date("2026-11-27T06:29:00Z");
    const ids = new Set(Array.from({ length: 20 }, () => newRunId(now)));
    expect(ids.size).toBe(20);
  });

  it("sorts by start time", () => {
    const earlier = newRunId(new Date("2026-01-02T23:59:00Z"));
    const later = newRunId(new Date("2026-01-03T00:00:00Z"));
    expect([later, earlier].sort()).toEqual([earlier, later]);
  });
});

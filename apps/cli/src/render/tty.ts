import { createLogUpdate } from "log-update";
import { formatDuration, type KilnEvent } from "@kiln/core";
import { eventLine, stepLabel } from "./text.js";

interface ImageState {
  step: string;
  stepStarted: number;
  lastLine: string;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * Live progress for a terminal: one status line per image being baked (step, elapsed time, last output line), with
 * finished images, warnings and failures printed permanently above.
 */
export function ttyRenderer(stream: NodeJS.WriteStream = process.stderr): { onEvent: (event: KilnEvent) => void; stop: () => void } {
  const live = new Map<string, ImageState>();
  const update = createLogUpdate(stream, { showCursor: true });
  let frame = 0;
  const draw = () => {
    frame = (frame + 1) % SPINNER.length;
    const width = stream.columns ?? 100;
    const lines = [...live].map(([image, state]) => {
      const elapsed = formatDuration(Date.now() - state.stepStarted);
      const line = `${SPINNER[frame]} ${image}  ${state.step}  ${elapsed}${state.lastLine ? `  │ ${state.lastLine}` : ""}`;
      return line.length > width ? `${line.slice(0, width - 1)}…` : line;
    });
    update(lines.join("\n"));
  };
  const timer = setInterval(draw, 100);
  const permanent = (text: string) => {
    update.clear();
    stream.write(`${text}\n`);
    draw();
  };
  return {
    onEvent(event) {
      switch (event.type) {
        case "step.start":
          live.set(event.image, { step: stepLabel(event.step, event.detail), stepStarted: Date.now(), lastLine: "" });
          break;
        case "output": {
          const state = live.get(event.image);
          if (state && event.line.trim()) state.lastLine = event.line.trim();
          break;
        }
        case "image.done":
        case "image.cached":
        case "image.failed":
        case "image.skipped":
          live.delete(event.image);
          permanent(eventLine(event) ?? "");
          break;
        case "log":
          if (event.level === "warn") permanent(eventLine(event) ?? "");
          break;
        case "verify.check":
        case "step.retry":
        case "cleanup.failed":
        case "abort.kept":
        case "signal":
        case "run.end":
          permanent(eventLine(event) ?? "");
          break;
        default:
          break;
      }
    },
    stop() {
      clearInterval(timer);
      update.clear();
      update.done();
    },
  };
}

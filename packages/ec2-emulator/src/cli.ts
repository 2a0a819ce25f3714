#!/usr/bin/env node
import { startEmulator } from "./server.js";

/** `kiln-ec2-emulator [--port 4566] [--host 127.0.0.1] [--transition-delay-ms 1000]`: runs until Ctrl-C, then cleans up. */
function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return (index !== -1 && process.argv[index + 1]) || fallback;
}

const emulator = await startEmulator({
  host: flag("host", "127.0.0.1"),
  port: Number(flag("port", "4566")),
  transitionDelayMs: Number(flag("transition-delay-ms", "1000")),
});
process.stdout.write(
  `kiln-ec2-emulator listening on ${emulator.endpoint} (run id ${emulator.runId}); Ctrl-C stops it and removes its instances\n`,
);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    emulator.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`kiln-ec2-emulator: cleanup failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  });
}

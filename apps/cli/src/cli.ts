#!/usr/bin/env node
// The binary's entry: answers --version without loading anything else, so it stays fast.
declare const __KILN_VERSION__: string;

const args = process.argv.slice(2);
// A reader that stops early (`kiln schema | head -1`) closes the pipe: that ends the output, it is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
}
if (args.length === 1 && (args[0] === "--version" || args[0] === "-v" || args[0] === "version")) {
  process.stdout.write(`kiln ${__KILN_VERSION__}\n`);
} else {
  const { main } = await import("./main.js");
  const code = await main(args, __KILN_VERSION__);
  // Exit once the output is flushed rather than when the event loop drains: a machine kept by --on-error=abort still holds its
  // SSH connection open. (A pipe that is full takes writes asynchronously: an empty write's callback comes after them.)
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise((flushed) => stream.write("", flushed))));
  process.exit(code);
}

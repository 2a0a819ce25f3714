import { KilnError } from "../src/errors.js";

/** The KilnError a promise rejects with; anything else (or no rejection) fails the test. */
export async function failure(promise: Promise<unknown>): Promise<KilnError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  if (!(error instanceof KilnError)) throw new Error(`expected a KilnError, got ${String(error)}`);
  return error;
}

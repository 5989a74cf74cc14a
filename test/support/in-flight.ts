// The simulators answer a lookup by key with 409 request_in_progress while a request under that key
// has been received and not yet answered: what a test waits for before it stops a server under it.
export async function untilInFlight(lookupUrl: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; (await fetch(lookupUrl)).status !== 409; ) {
    if (Date.now() > deadline) throw new Error(`never in flight: ${lookupUrl}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// Raw HTTP to a simulator, for the simulator test files: what the typed clients never send, and
// what they do not show.

/** Raw POST, for what the typed client never sends (no key, bad JSON, numbers as amounts). */
export async function rawPost(url: string, body: unknown, key: string | null = `key_${crypto.randomUUID()}`): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { 'idempotency-key': key }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

/**
 * The simulators answer a lookup by key with 409 request_in_progress while a request under that
 * key has been received and not yet answered: what a test waits for before it stops a server under it.
 */
export async function untilInFlight(lookupUrl: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; (await fetch(lookupUrl)).status !== 409; ) {
    if (Date.now() > deadline) throw new Error(`never in flight: ${lookupUrl}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

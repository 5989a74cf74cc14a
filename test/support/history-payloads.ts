// Reading a workflow history (proto JSON, as Temporal returns it and test/histories keeps it) the way
// someone with access to Temporal's database or Web UI would: every payload's bytes, base64
// decoded. Searching the JSON text alone would miss a value, since payload data is base64 there.

export interface StoredPayload {
  /** Where in the history: e.g. `events[0].workflowExecutionStartedEventAttributes.input.payloads[0]`. */
  path: string;
  metadata: Record<string, string>;
  data: Buffer;
}

const isBase64Map = (value: unknown): value is Record<string, string> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');

/** Every payload in `history` (anything shaped { metadata: {k: base64}, data?: base64 }), decoded. */
export function payloadsIn(history: unknown): StoredPayload[] {
  const found: StoredPayload[] = [];
  const walk = (node: unknown, path: string) => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => walk(child, `${path}[${i}]`));
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const record = node as Record<string, unknown>;
    if (isBase64Map(record.metadata) && (record.data === undefined || typeof record.data === 'string')) {
      const metadata = Object.fromEntries(Object.entries(record.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
      found.push({ path, metadata, data: Buffer.from((record.data as string | undefined) ?? '', 'base64') });
      return;
    }
    for (const [key, child] of Object.entries(record)) walk(child, path ? `${path}.${key}` : key);
  };
  walk(history, '');
  return found;
}

/** Which of `needles` appear in the history: in its JSON text, or in any payload's decoded bytes. */
export function plaintextIn(history: unknown, needles: readonly string[]): string[] {
  const text = JSON.stringify(history);
  const payloads = payloadsIn(history);
  return needles.filter((needle) => text.includes(needle) || payloads.some((p) => p.data.includes(needle) || Object.values(p.metadata).some((v) => v.includes(needle))));
}

/** Search attributes are payloads too, indexed in plain text on purpose (they never pass through the codec). */
export const isSearchAttribute = (p: StoredPayload): boolean => /(^|\.)(searchAttributes|upsertWorkflowSearchAttributesEventAttributes)\b/.test(p.path);

/**
 * What the SDK's core writes into markers for itself, never through the codec: a patch's id
 * (`patch-data`) and a local activity's bookkeeping (`data`: seq, attempt, activity type, times).
 * The local activity's result (`details.result`) is the application's and is encrypted.
 */
export const isSdkBookkeeping = (p: StoredPayload): boolean => /\.markerRecordedEventAttributes\.details\.(patch-data|data)\./.test(p.path);

// Recorded workflow histories are only ever added: each is the proof that runs recorded with it keep
// replaying (test/replay.test.ts), so overwriting one would silently drop that proof. The recorder
// refuses to overwrite, and test/histories/MANIFEST lists every file with its SHA-256, which the
// replay test checks both ways (a file edited, removed or added by hand fails it).
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';

export const HISTORIES_DIR = path.join(import.meta.dirname, '..', 'histories');
export const MANIFEST = path.join(HISTORIES_DIR, 'MANIFEST');

export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** `<sha256>  <path relative to test/histories>` per line, sorted by path (sha256sum's format). */
export async function readManifest(): Promise<Map<string, string>> {
  const text = await fs.readFile(MANIFEST, 'utf8').catch(() => '');
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m) entries.set(m[2]!, m[1]!);
  }
  return entries;
}

async function writeManifest(entries: Map<string, string>): Promise<void> {
  const lines = [...entries].sort(([a], [b]) => (a < b ? -1 : 1)).map(([file, hash]) => `${hash}  ${file}`);
  await fs.writeFile(MANIFEST, lines.join('\n') + '\n');
}

/**
 * With RECORD_HISTORIES=1, saves the run's history as `test/histories/<workflow type>/<name>.json`
 * and adds it to the manifest. A name already recorded keeps its history: record a new or changed
 * scenario under a new name, never over an old one.
 */
export async function recordHistory(name: string, handle: WorkflowHandle): Promise<void> {
  if (!process.env.RECORD_HISTORIES) return;
  const workflowType = (await handle.describe()).type;
  const file = path.join(workflowType, `${name}.json`);
  const target = path.join(HISTORIES_DIR, file);
  const manifest = await readManifest();
  const exists = await fs.stat(target).then(
    () => true,
    () => false,
  );
  // Never over an existing one: a scenario already recorded keeps its first history (record a
  // changed scenario under a new name).
  if (exists || manifest.has(file)) return;
  const text = historyToJSON(await handle.fetchHistory()) + '\n';
  await fs.mkdir(path.dirname(target), { recursive: true });
  await fs.writeFile(target, text, { flag: 'wx' });
  manifest.set(file, sha256(text));
  await writeManifest(manifest);
}

// Determinism guard: every recorded history in test/histories must replay against the current
// workflow code. A change that would break running workflows fails here and needs `patched()`, or a
// new workflow type while the old one stays (workflows/legacy/). Histories are only ever added
// (test/support/histories.ts records new ones and refuses to overwrite): the manifest lists each
// with its SHA-256, and a file edited, removed or added by hand fails the first test below.
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { bundlePaymentWorkflows } from '../workers/payment-worker.js';
import * as workflows from '../workflows/index.js';
import { HISTORIES_DIR, readManifest, sha256 } from './support/histories.js';
import { testDataConverter } from './support/payload-keys.js';

async function historyFiles(): Promise<string[]> {
  return (await fs.readdir(HISTORIES_DIR, { recursive: true })).filter((f) => f.endsWith('.json')).sort();
}

describe('recorded workflow histories', () => {
  it('are exactly the ones the manifest lists, unchanged', async () => {
    const manifest = await readManifest();
    const files = await historyFiles();
    expect(files).toEqual([...manifest.keys()].sort());
    for (const file of files) {
      const text = await fs.readFile(path.join(HISTORIES_DIR, file), 'utf8');
      expect({ file, sha256: sha256(text) }).toEqual({ file, sha256: manifest.get(file) });
    }
  });

  it('cover every workflow type the worker serves', async () => {
    const recorded = new Set<string>();
    for (const file of await historyFiles()) {
      const history = JSON.parse(await fs.readFile(path.join(HISTORIES_DIR, file), 'utf8')) as {
        events: Array<{ workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }>;
      };
      const type = history.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
      if (type) recorded.add(type);
    }
    expect(Object.keys(workflows)).toEqual(expect.arrayContaining(['checkoutWorkflowV2', 'topupWorkflowV2', 'payoutWorkflowV2', 'webhookDeliveryWorkflow', 'reconciliationWorkflowV2']));
    // A type without a history has nothing guarding its running workflows against a change.
    expect(Object.keys(workflows).filter((type) => !recorded.has(type))).toEqual([]);
  });

  it('replay against the current workflow code', async () => {
    const files = await historyFiles();
    const workflowBundle = await bundlePaymentWorkflows({ logger: quietLogger });
    const histories = await Promise.all(
      files.map(async (file) => ({
        workflowId: file.replace(/\.json$/, '').replaceAll(path.sep, '-'),
        history: historyFromJSON(JSON.parse(await fs.readFile(path.join(HISTORIES_DIR, file), 'utf8'))),
      })),
    );
    const failures: string[] = [];
    // Histories recorded with the payload codec need its key (the committed test key); older ones,
    // in plain text, pass through it unchanged.
    for await (const result of Worker.runReplayHistories({ workflowBundle, replayName: 'history-replay', dataConverter: testDataConverter() }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(histories.length).toBeGreaterThan(0);
  });
});

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

// Determinism guard: every recorded checkout history in test/histories must replay against the
// current workflow code. A change that would break running checkouts fails here and needs
// `patched()`. Record fresh histories with `npm run record:histories` after an intended change;
// histories of the code before a patch move to a subfolder named after it and stay, to prove the
// patch keeps those runs replaying.
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../workers/payment-worker.js';

const HISTORIES = path.join(import.meta.dirname, 'histories');

describe('recorded checkout histories', () => {
  it('replay against the current workflow code', async () => {
    const files = (await fs.readdir(HISTORIES, { recursive: true })).filter((f) => f.endsWith('.json')).sort();
    // One per checkout, top-up and payout path, before and after each patch: the suite would prove
    // nothing with the folder emptied by mistake.
    expect(files.length).toBeGreaterThanOrEqual(28);
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
    const histories = await Promise.all(
      files.map(async (file) => ({
        workflowId: file.replace(/\.json$/, '').replaceAll(path.sep, '-'),
        history: historyFromJSON(JSON.parse(await fs.readFile(path.join(HISTORIES, file), 'utf8'))),
      })),
    );
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle, replayName: 'checkout-replay' }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
  });
});

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

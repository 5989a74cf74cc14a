// The workflow code, bundled once by whoever starts the workers (`npm start`, a test stack, the
// benchmark, the chaos suite) and handed to each through WORKFLOW_BUNDLE_PATH. Without it every
// worker bundles at start-up, which takes 15-25 s on two busy cores: a supervisor's restart after
// a crash, and every extra worker, would wait that long before polling again.
import fs from 'node:fs/promises';
import path from 'node:path';
import { bundlePaymentWorkflows } from '../workers/payment-worker.js';

/** Bundles workflows/index.ts into `file` (written atomically); resolves with `file`. */
export async function writeWorkflowBundle(file: string): Promise<string> {
  const { code } = await bundlePaymentWorkflows({
    // webpack's summary is noise in the launcher's output.
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  await fs.mkdir(path.dirname(file), { recursive: true });
  const partial = `${file}.${process.pid}.tmp`;
  await fs.writeFile(partial, code);
  await fs.rename(partial, file);
  return file;
}

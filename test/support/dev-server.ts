// Connections to the run's Temporal dev server (test/global-setup.ts gives TEMPORAL_ADDRESS), a
// client with the tests' payload codec, and the bundled workflows: what a file that runs workers
// against the real server opens in its beforeAll (and closes in its afterAll).
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { bundlePaymentWorkflows } from '../../workers/payment-worker.js';
import { testDataConverter } from './payload-keys.js';

export async function connectDevServer(): Promise<{
  connection: Connection;
  nativeConnection: NativeConnection;
  client: Client;
  workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;
}> {
  const [connection, nativeConnection, workflowBundle] = await Promise.all([
    Connection.connect({ address: process.env.TEMPORAL_ADDRESS! }),
    NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS! }),
    bundlePaymentWorkflows(),
  ]);
  const client = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default', dataConverter: testDataConverter() });
  return { connection, nativeConnection, client, workflowBundle };
}

// Test-side helpers for the bank simulator's fault injection (/v1/test/faults). They live beside
// the simulator, not in the production client: no real bank takes orders to fail.
import type { FaultRecord, FaultSpec } from './store.js';

export type { FaultMode as BankFaultMode } from './store.js';
export type BankFault = FaultSpec;
export type InjectedBankFault = FaultRecord;

/**
 * Makes the next `times` transfer requests carrying `reference` (a payout id) fail in `mode`,
 * retries under the same key included. Faults for the same reference queue up, oldest first.
 * Each call adds one: do not retry it.
 */
export async function injectBankFault(baseUrl: string, fault: BankFault): Promise<InjectedBankFault> {
  const res = await fetch(`${baseUrl.replace(/\/+$/, '')}/v1/test/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(fault),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`injecting a bank fault failed: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as InjectedBankFault;
}

/** Every fault injected for a reference, oldest first, with how many hits each has left. */
export async function listBankFaults(baseUrl: string, reference: string): Promise<InjectedBankFault[]> {
  const res = await fetch(`${baseUrl.replace(/\/+$/, '')}/v1/test/faults?reference=${encodeURIComponent(reference)}`, {
    headers: { accept: 'application/json' },
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`listing bank faults failed: HTTP ${res.status} ${text}`);
  return (JSON.parse(text) as { data: InjectedBankFault[] }).data;
}

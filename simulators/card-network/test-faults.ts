// Test-side helpers for the simulator's fault injection (/v1/test/faults). They live beside the
// simulator, not in the production client: no real network takes orders to fail.
import type { FaultRecord, FaultSpec } from './store.js';

export type { FaultMode as CardFaultMode, FaultOperation as CardFaultOperation } from './store.js';
export type CardFault = FaultSpec;
export type InjectedCardFault = FaultRecord;

/**
 * Makes the next `times` requests of `operation` for `reference` (a checkout id; for capture,
 * void, refund and authenticate the reference of their authorization) fail in `mode`. Faults for
 * the same reference and operation queue up, oldest first. Each call adds one: do not retry it.
 */
export async function injectCardFault(baseUrl: string, fault: CardFault): Promise<InjectedCardFault> {
  const res = await fetch(`${baseUrl.replace(/\/+$/, '')}/v1/test/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(fault),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`injecting a card-network fault failed: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as InjectedCardFault;
}

/** Every fault injected for a reference, oldest first, with how many hits each has left. */
export async function listCardFaults(baseUrl: string, reference: string): Promise<InjectedCardFault[]> {
  const res = await fetch(`${baseUrl.replace(/\/+$/, '')}/v1/test/faults?reference=${encodeURIComponent(reference)}`, {
    headers: { accept: 'application/json' },
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`listing card-network faults failed: HTTP ${res.status} ${text}`);
  return (JSON.parse(text) as { data: InjectedCardFault[] }).data;
}

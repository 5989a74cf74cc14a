// The API's per-SKU admission (api/stock-gate.ts): a request may start a checkout workflow only
// while this process's reservations in flight leave room for it in the stock it read.
import { describe, expect, it } from 'vitest';
import { createStockGate } from '../api/stock-gate.js';

const stock = (entries: Record<string, number>) => new Map(Object.entries(entries));

describe('stock gate', () => {
  it('admits requests while their units fit beside the claims in flight, then makes the next wait', () => {
    const gate = createStockGate();
    const available = stock({ tee: 2 });
    const first = gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], available);
    const second = gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], available);
    expect(first).toBeTypeOf('function');
    expect(second).toBeTypeOf('function');
    expect(gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], available)).toBeUndefined();
    // Another merchant's SKU of the same name is another product.
    expect(gate.tryClaim('m2', [{ sku: 'tee', quantity: 1 }], stock({ tee: 1 }))).toBeTypeOf('function');
  });

  it('always admits the first request for a SKU, so a stale read cannot block it', () => {
    const gate = createStockGate();
    expect(gate.tryClaim('m1', [{ sku: 'tee', quantity: 3 }], stock({ tee: 1 }))).toBeTypeOf('function');
  });

  it('claims every line or none', () => {
    const gate = createStockGate();
    gate.tryClaim('m1', [{ sku: 'cap', quantity: 1 }], stock({ cap: 1 }));
    const available = stock({ tee: 5, cap: 1 });
    expect(gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }, { sku: 'cap', quantity: 1 }], available)).toBeUndefined();
    // tee was not claimed by the refused request: five single tee requests still fit.
    for (let i = 0; i < 5; i++) expect(gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], available)).toBeTypeOf('function');
    expect(gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], available)).toBeUndefined();
  });

  it('wakes a waiting request when a claim on its SKU is released, once per release', async () => {
    const gate = createStockGate();
    const release = gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], stock({ tee: 1 }))!;
    let woke = false;
    const waiting = gate.waitForChange('m1', [{ sku: 'tee', quantity: 1 }], 60_000).then(() => (woke = true));
    await Promise.resolve();
    expect(woke).toBe(false);
    release();
    release(); // a second call changes nothing
    await waiting;
    expect(woke).toBe(true);
    // Released: the next request is admitted again.
    expect(gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], stock({ tee: 1 }))).toBeTypeOf('function');
  });

  it('gives up waiting after the timeout, so a slow answer never turns into a false sold_out', async () => {
    const gate = createStockGate();
    gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], stock({ tee: 1 }));
    const started = Date.now();
    await gate.waitForChange('m1', [{ sku: 'tee', quantity: 1 }], 50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });
});

describe('sold-out marks', () => {
  it('answer sold out for the quantity a hold could not get, or more, until units come back', () => {
    let now = 0;
    const gate = createStockGate(() => now);
    expect(gate.knownSoldOut('m1', [{ sku: 'tee', quantity: 1 }])).toBe(false);
    // A hold of 2 failed: at most 1 unit was left.
    gate.markSoldOut('m1', 'tee', 2);
    expect(gate.knownSoldOut('m1', [{ sku: 'tee', quantity: 1 }])).toBe(false);
    expect(gate.knownSoldOut('m1', [{ sku: 'tee', quantity: 2 }])).toBe(true);
    expect(gate.knownSoldOut('m1', [{ sku: 'cap', quantity: 1 }, { sku: 'tee', quantity: 3 }])).toBe(true);
    expect(gate.knownSoldOut('m2', [{ sku: 'tee', quantity: 2 }])).toBe(false);
    gate.stockReturned('m1', 'tee');
    expect(gate.knownSoldOut('m1', [{ sku: 'tee', quantity: 2 }])).toBe(false);
    // Marks are forgotten wholesale when notices of returned stock may have been missed, and grow old.
    gate.markSoldOut('m1', 'tee', 1);
    gate.forgetSoldOut();
    expect(gate.knownSoldOut('m1', [{ sku: 'tee', quantity: 1 }])).toBe(false);
    gate.markSoldOut('m1', 'tee', 1);
    now += 10_001;
    expect(gate.knownSoldOut('m1', [{ sku: 'tee', quantity: 1 }])).toBe(false);
  });
});

describe('releasing claims', () => {
  it('takes back exactly the units claimed, once, whatever is still in flight', () => {
    const gate = createStockGate();
    const first = gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], stock({ tee: 5 }))!;
    gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], stock({ tee: 5 }));
    first();
    first(); // a second call must not release the other claim's unit
    // One unit is still claimed: a request for one more does not fit in one available.
    expect(gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], stock({ tee: 1 }))).toBeUndefined();
    expect(gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], stock({ tee: 2 }))).toBeTypeOf('function');
  });

  it('releases without anyone waiting, and wakes every request waiting on the SKU', async () => {
    const gate = createStockGate();
    expect(() => gate.tryClaim('m1', [{ sku: 'cap', quantity: 1 }], stock({ cap: 1 }))!()).not.toThrow();
    const release = gate.tryClaim('m1', [{ sku: 'tee', quantity: 1 }], stock({ tee: 1 }))!;
    const woke: string[] = [];
    const waits = ['a', 'b'].map((name) => gate.waitForChange('m1', [{ sku: 'tee', quantity: 1 }], 60_000).then(() => woke.push(name)));
    release();
    await Promise.all(waits);
    expect(woke.sort()).toEqual(['a', 'b']);
  });

  it('keeps a sold-out mark for exactly 10 seconds', () => {
    let now = 1_000_000;
    const gate = createStockGate(() => now);
    gate.markSoldOut('m1', 'tee', 1);
    now += 10_000;
    expect(gate.knownSoldOut('m1', [{ sku: 'tee', quantity: 1 }])).toBe(true);
    now += 1;
    expect(gate.knownSoldOut('m1', [{ sku: 'tee', quantity: 1 }])).toBe(false);
  });
});

// Admission per SKU for POST /v1/checkouts, inside one API process. In a flash sale, thousands of
// buyers read "1 left" before any of them has held it; each would start a checkout workflow that
// then finds nothing to hold. The gate lets a request start a workflow only while the units it
// asks for are not already claimed by this process's reservations in flight; the others wait for
// one of those to answer, then read the stock again and, once it is gone, take the sold-out fast
// path (one insert, no workflow). Nothing is held here: the workflow's conditional update stays
// the only thing that holds stock, so the gate can only delay a request, never oversell, and with
// several API processes each bounds its own overshoot.

export interface StockLine {
  sku: string;
  quantity: number;
}

export interface StockGate {
  /**
   * A hold of `quantity` found too little of `sku`: this process answers sold out at once for that
   * quantity or more (no read, no workflow) until units come back (`stockReturned`) or the mark
   * grows old.
   */
  markSoldOut(merchantId: string, sku: string, quantity: number): void;
  /** Whether some line asks for more than this process last saw of its SKU when a hold failed. */
  knownSoldOut(merchantId: string, lines: readonly StockLine[]): boolean;
  /** Units of `sku` went back on sale (a released hold or sale): forget its mark. */
  stockReturned(merchantId: string, sku: string): void;
  /** Forget every mark (the notifications of returned stock may have been missed). */
  forgetSoldOut(): void;
  /**
   * Claims `lines` when every line's in-flight claims plus its quantity fit in `available`;
   * returns the release function, or undefined when the request should wait (`waitForChange`)
   * and read the stock again.
   */
  tryClaim(merchantId: string, lines: readonly StockLine[], available: ReadonlyMap<string, number>): (() => void) | undefined;
  /** Resolves when a claim on one of `lines` is released, or after `timeoutMs`. */
  waitForChange(merchantId: string, lines: readonly StockLine[], timeoutMs: number): Promise<void>;
}

/** A sold-out mark older than this is checked against the database again: a safety net for a lost notification. */
const SOLD_OUT_MARK_MS = 10_000;

export function createStockGate(now: () => number = Date.now): StockGate {
  const inFlight = new Map<string, number>();
  const waiters = new Map<string, Set<() => void>>();
  /** Per SKU: at most this many units were available when a hold failed, and when that was. */
  const soldOut = new Map<string, { atMost: number; at: number }>();
  const keyOf = (merchantId: string, sku: string) => `${merchantId}\u0000${sku}`;

  return {
    markSoldOut(merchantId, sku, quantity) {
      soldOut.set(keyOf(merchantId, sku), { atMost: Math.max(0, quantity - 1), at: now() });
    },

    knownSoldOut(merchantId, lines) {
      return lines.some((line) => {
        const key = keyOf(merchantId, line.sku);
        const mark = soldOut.get(key);
        if (!mark) return false;
        if (now() - mark.at > SOLD_OUT_MARK_MS) {
          soldOut.delete(key);
          return false;
        }
        return line.quantity > mark.atMost;
      });
    },

    stockReturned(merchantId, sku) {
      soldOut.delete(keyOf(merchantId, sku));
    },

    forgetSoldOut() {
      soldOut.clear();
    },

    tryClaim(merchantId, lines, available) {
      for (const line of lines) {
        const claimed = inFlight.get(keyOf(merchantId, line.sku)) ?? 0;
        if (claimed > 0 && claimed + line.quantity > (available.get(line.sku) ?? 0)) return undefined;
      }
      for (const line of lines) {
        const key = keyOf(merchantId, line.sku);
        inFlight.set(key, (inFlight.get(key) ?? 0) + line.quantity);
      }
      let released = false;
      return () => {
        if (released) return;
        released = true;
        for (const line of lines) {
          const key = keyOf(merchantId, line.sku);
          const left = (inFlight.get(key) ?? 0) - line.quantity;
          if (left > 0) inFlight.set(key, left);
          else inFlight.delete(key);
          const waiting = waiters.get(key);
          if (waiting) {
            waiters.delete(key);
            for (const wake of waiting) wake();
          }
        }
      };
    },

    waitForChange(merchantId, lines, timeoutMs) {
      return new Promise((resolve) => {
        const keys = lines.map((line) => keyOf(merchantId, line.sku));
        const wake = () => {
          clearTimeout(timer);
          for (const key of keys) waiters.get(key)?.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, timeoutMs);
        for (const key of keys) {
          let set = waiters.get(key);
          if (!set) waiters.set(key, (set = new Set()));
          set.add(wake);
        }
      });
    },
  };
}

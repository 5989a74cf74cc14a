import { createHash, timingSafeEqual } from 'node:crypto';

/** API keys are stored as their SHA-256: the merchants table never holds a working key. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * Whether two keys' hashes (hashApiKey) are the same, compared in constant time: how long the
 * answer takes tells nothing about how much of a guess was right. Comparing digests, not the keys,
 * also keeps the length of the real key out of the timing. For the operator key, wherever it is
 * checked (the API, the codec server).
 */
export function sameKeyHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

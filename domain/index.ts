// What the API, the workers and the workflows share. Nothing here imports Node, Prisma or Express,
// so workflow code can import it safely.
export * from './money.js';
export * from './inputs.js';
export * from './errors.js';
export * from './ids.js';
export * from './checkout.js';
export * from './search-attributes.js';
export * from './ledger.js';
export * from './postings.js';
export * from './wallet.js';
export * from './events.js';
export * from './reconciliation.js';

// Recomputes every ledger balance from the journal and checks the books balance:
//   npx tsx scripts/ledger-check.ts   (DATABASE_URL, or the embedded database `npm start` runs)
// Exit 0: consistent. Exit 1: the ledger is inconsistent (report on stdout). Exit 2: the check
// could not run (database unreachable, ...), so a cron job can tell "books wrong" from "check broken".
import { loadConfig } from '../platform/config.js';
import { createPrisma } from '../platform/db.js';
import { checkLedger, type LedgerCheckReport } from '../platform/ledger.js';

const SHOWN = 20;

function format(report: LedgerCheckReport): string {
  const lines = [
    `ledger ${report.ok ? 'OK' : 'INCONSISTENT'}: ${report.accounts} accounts, ${report.transfers} transfers, ${report.unresolvedPendingCount} pending holds unresolved`,
  ];
  const section = <T>(title: string, items: T[], line: (item: T) => string) => {
    if (items.length === 0) return;
    lines.push(`${title} (${items.length}):`);
    for (const item of items.slice(0, SHOWN)) lines.push(`  ${line(item)}`);
    if (items.length > SHOWN) lines.push(`  ... and ${items.length - SHOWN} more`);
  };
  const four = (c: { debitsPending: bigint; debitsPosted: bigint; creditsPending: bigint; creditsPosted: bigint }) =>
    `debits ${c.debitsPosted} posted/${c.debitsPending} pending, credits ${c.creditsPosted} posted/${c.creditsPending} pending`;
  section('balances differing from the journal', report.mismatches, (m) => `${m.accountId}: stored ${four(m.stored)}; journal ${four(m.fromJournal)}`);
  section('currencies not balanced', report.imbalancedCurrencies, (c) => `${c.currency}: ${four(c)}`);
  section('no-overdraft accounts overdrawn', report.overdrawn, (o) => `${o.accountId}: available ${o.available}`);
  section('resolutions not matching their pending transfer', report.invalidResolutions, (r) => `${r.id} -> ${r.pendingId}`);
  return lines.join('\n');
}

const prisma = createPrisma(loadConfig().databaseUrl, 1);
try {
  const report = await checkLedger(prisma);
  console.log(format(report));
  process.exitCode = report.ok ? 0 : 1;
} catch (err) {
  console.error(`ledger check could not run: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 2;
} finally {
  await prisma.$disconnect();
}

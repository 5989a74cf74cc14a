import { defineConfig } from 'vitest/config';

// The unit tests that mutation testing (stryker.config.json) runs against every mutant: they test
// domain/, the API's pure helpers and workflows/failures.ts without PostgreSQL or Temporal, so this
// config has none of vitest.config.ts's global setup (which starts both) and a mutant's run takes
// milliseconds. They also run in `npm test`, under the main config.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/ids.test.ts', 'test/stock-gate.test.ts'],
    testTimeout: 10_000,
  },
});

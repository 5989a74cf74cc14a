import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL and one Temporal dev server for the whole run (see test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup-runtime.ts'],
    // Child processes, not worker threads: the Temporal worker's native core bridge and the
    // end-to-end tests' own child processes behave best in a process of their own.
    pool: 'forks',
    // 2-core machines: test files that each run workers, servers and bundling would only fight
    // over the CPU and time out in parallel.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});

// Lint rules that matter here: floating promises lose failures (and in workflows, determinism),
// and workflow code must not reach Node, the database or activity implementations at run time.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const NODE_BUILTINS = ['assert', 'buffer', 'child_process', 'crypto', 'dns', 'events', 'fs', 'fs/promises', 'http', 'https', 'net', 'os', 'path', 'process', 'stream', 'timers', 'url', 'util', 'worker_threads', 'zlib'];

export default tseslint.config(
  { ignores: ['node_modules/', 'generated/', '.data/', 'coverage/', 'reports/', '.stryker-tmp/', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // CommonJS the Temporal SDK loads by path (platform/failure-converter.cjs): no type information,
    // and `require` is how it is written.
    files: ['**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', exports: 'writable' }, parserOptions: { projectService: false } },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['workflows/**/*.ts', 'domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: NODE_BUILTINS.flatMap((name) => [name, `node:${name}`]).map((name) => ({
            name,
            message: 'Workflow code is replayed and must be deterministic: no Node built-ins.',
          })),
          patterns: [
            { group: ['@prisma/*', 'express', 'pg', '**/generated/**', '**/platform/**'], message: 'Workflow code cannot do I/O; call an activity.' },
            { group: ['**/activities/**'], allowTypeImports: true, message: 'Import activities with `import type` and call them through proxyActivities.' },
            { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity'], message: 'Only @temporalio/workflow and @temporalio/common run inside workflows.' },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'process', message: 'No environment in workflow code: pass settings as workflow input.' }],
    },
  },
);

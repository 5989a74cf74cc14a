import { defineConfig } from 'prisma/config';

// Prisma 7 reads the datasource URL from here rather than from schema.prisma. `prisma generate`
// needs no database, so a placeholder keeps it working on a machine with nothing running.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: {
    url: process.env.DATABASE_URL ?? 'postgresql://postgres:postgres@127.0.0.1:5433/payments',
  },
});

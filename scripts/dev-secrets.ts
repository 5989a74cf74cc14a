// Secrets a development stack needs and nobody configured: made once on the first `npm start` and
// kept under DATA_DIR/secrets (0700, files 0600), so a restart keeps the same operator key and the
// same payload keys (workflow histories written under one stay readable). A production deployment
// sets them through its configuration instead and never reaches this code.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** Returns the secret stored as `name` under `dataDir`, making it with `make` the first time. */
export async function ensureDevSecret(dataDir: string, name: string, make: () => string): Promise<{ value: string; file: string }> {
  const dir = path.join(dataDir, 'secrets');
  const file = path.join(dir, name);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.chmod(dir, 0o700);
  try {
    const value = (await fs.readFile(file, 'utf8')).trim();
    if (value !== '') return { value, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = make();
  // `wx`: two launchers racing on a fresh DATA_DIR cannot both write; the loser reads the winner's.
  try {
    await fs.writeFile(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return { value, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { value: (await fs.readFile(file, 'utf8')).trim(), file };
  }
}

/** An operator API key: `sk_op_` and 48 hex characters. */
export const newOperatorApiKey = (): string => `sk_op_${randomBytes(24).toString('hex')}`;

// Files the ACME service keeps in tls.dir: the account key and URL per CA
// directory (acme/account-<hash>.key|.url, 0600), and the issued pair,
// written beside and renamed into place so a reader never sees half a file.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AcmeAccount {
  key: Buffer;
  url: string | null;
}

function accountBase(tlsDir: string, directory: string): string {
  const dir = join(tlsDir, 'acme');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // One account per CA: the staging and production directories are separate accounts.
  return join(dir, `account-${createHash('sha256').update(directory).digest('hex').slice(0, 12)}`);
}

export async function readAccount(
  tlsDir: string,
  directory: string,
  createKey: () => Promise<Buffer>,
): Promise<AcmeAccount> {
  const base = accountBase(tlsDir, directory);
  if (!existsSync(`${base}.key`)) writeAtomic(`${base}.key`, await createKey());
  const url = existsSync(`${base}.url`) ? readFileSync(`${base}.url`, 'utf8').trim() || null : null;
  return { key: readFileSync(`${base}.key`), url };
}

export function writeAccount(tlsDir: string, directory: string, url: string): void {
  writeAtomic(`${accountBase(tlsDir, directory)}.url`, `${url}\n`);
}

/** Writes NAME.key then NAME.crt (the chain), each atomically. */
export function writeCertificatePair(tlsDir: string, name: string, key: string, chain: string): void {
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  writeAtomic(join(tlsDir, `${name}.key`), key);
  writeAtomic(join(tlsDir, `${name}.crt`), chain);
}

function writeAtomic(file: string, data: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, file);
}

// `jabberfly backup FILE`, `jabberfly restore FILE` and `jabberfly
// repair-storage`: the store as one portable file and back
// (storage/backup.ts), and LevelDB's own repair for a store whose metadata
// is lost. A LevelDB store must not be in use (the running server holds
// it): the server is stopped first, so the file is the store at one moment.
// PostgreSQL can be backed up while the server runs, but writes made
// during the backup are then refused by the final count check.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config/schema.ts';
import { AccountStore } from '../storage/accounts.ts';
import { BackupError, backupTo, restoreFrom } from '../storage/backup.ts';
import { LevelBackend, StorageLockedError } from '../storage/level.ts';
import { StorageFolderError } from '../storage/level-folder.ts';
import { describeStore, openBackend } from '../storage/open.ts';
import type { StorageBackend } from '../storage/types.ts';

export class BackupCommandError extends Error {}

async function open(config: Config): Promise<StorageBackend> {
  try {
    return await openBackend(config.storage);
  } catch (err) {
    if (err instanceof StorageLockedError) throw new BackupCommandError(`${err.message}: stop the server first`);
    if (err instanceof StorageFolderError) throw new BackupCommandError(err.message);
    throw new BackupCommandError(`${describeStore(config.storage)}: ${(err as Error).message}`);
  }
}

function summary(counts: Record<string, Record<string, number>>): string[] {
  return Object.entries(counts).map(
    ([store, c]) => `  ${store.padEnd(32)} ${Object.entries(c).map(([unit, n]) => `${n} ${unit}`).join(', ')}`,
  );
}

export async function backupCommand(config: Config, file: string | undefined, print: (line: string) => void): Promise<number> {
  if (!file) throw new BackupCommandError('usage: jabberfly backup FILE (FILE.gz to compress; the server stopped for LevelDB)');
  const target = resolve(file);
  if (existsSync(target)) throw new BackupCommandError(`${target} exists: a backup never overwrites a file, give a new name`);
  const backend = await open(config);
  try {
    const { records, counts } = await backupTo(backend, target);
    print(`backed up ${describeStore(config.storage)} to ${target}: ${records} records`);
    for (const line of summary(counts)) print(line);
    print('not included: uploaded files (upload.path) and the transport key (msn.keyFile): copy those as files');
    return 0;
  } catch (err) {
    if (err instanceof BackupError) throw new BackupCommandError(err.message);
    throw err;
  } finally {
    await backend.close();
  }
}

export async function restoreCommand(config: Config, file: string | undefined, print: (line: string) => void): Promise<number> {
  if (!file) throw new BackupCommandError('usage: jabberfly restore FILE (into an empty store; the server stopped)');
  const source = resolve(file);
  if (!existsSync(source)) throw new BackupCommandError(`${source} does not exist`);
  const backend = await open(config);
  try {
    print(`restoring ${source} into ${describeStore(config.storage)}`);
    const { records, counts } = await restoreFrom(backend, source, (line) => print(`  ${line}`));
    for (const line of summary(counts)) print(line);
    print(`verified: ${records} records, the same counts as the backup`);
    return 0;
  } catch (err) {
    if (err instanceof BackupError) throw new BackupCommandError(`restore failed: ${err.message}`);
    throw err;
  } finally {
    await backend.close();
  }
}

export async function repairCommand(config: Config, print: (line: string) => void): Promise<number> {
  if (config.storage.backend !== 'level') throw new BackupCommandError('repair-storage is for the LevelDB store (storage.backend: level)');
  const path = resolve(config.storage.path);
  if (!existsSync(path)) throw new BackupCommandError(`${path} does not exist`);
  print(`repairing the LevelDB store in ${path} (what can still be read is kept)`);
  try {
    await LevelBackend.repair(path);
  } catch (err) {
    if (err instanceof StorageLockedError) throw new BackupCommandError(`${err.message}: stop the server first`);
    throw new BackupCommandError(`repair of ${path} failed: ${(err as Error).message}`);
  }
  // Opened as a start would: the repaired store must pass the same checks and read.
  const backend = await open(config);
  try {
    let keys = 0;
    for await (const _ of new AccountStore(backend).users()) keys++;
    print(`repaired: the store opens (${keys} account${keys === 1 ? '' : 's'}); check it with jabberfly users before starting`);
    return 0;
  } finally {
    await backend.close();
  }
}

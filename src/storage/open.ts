// Opens the backend the configuration names (storage.backend): the
// embedded LevelDB by default, PostgreSQL for larger sites and clusters.
// Everything above the seam is the same for both.
import { mkdirSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { LevelBackend } from './level.ts';
import { errnoText, StorageFolderError } from './level-folder.ts';
import { PgBackend } from './pg.ts';
import type { StorageBackend } from './types.ts';

export async function openBackend(storage: Config['storage'], log?: Logger): Promise<StorageBackend> {
  if (storage.backend === 'postgres') {
    // storage.path stays this node's own folder (admin socket): 0700, as LevelDB's.
    try {
      mkdirSync(storage.path, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StorageFolderError(`cannot create the storage folder ${storage.path}: ${errnoText(err)}`);
    }
    return PgBackend.open(storage.url, {
      poolSize: storage.poolSize,
      onError: (err) => log?.warn('storage connection lost', { error: err.message }),
    });
  }
  return LevelBackend.open(storage.path, storage.sync);
}

/** Where the store is, for people (never the database password). */
export function describeStore(storage: Config['storage']): string {
  if (storage.backend !== 'postgres') return storage.path;
  try {
    const u = new URL(storage.url);
    return `postgres://${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return 'postgres (storage.url)';
  }
}

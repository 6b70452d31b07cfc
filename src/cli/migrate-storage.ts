// `jabberfly migrate-storage --from level --to postgres`: copies every
// store of one backend into the other (storage/copy.ts) and verifies the
// counts. The LevelDB side is storage.path (or --path), the PostgreSQL
// side storage.url (or --url, or $JABBERFLY_STORAGE_URL). The server must
// be stopped: a LevelDB store held by a running server is refused, and a
// copy of a store that is still changing would not be the store.
import type { Config } from '../config/schema.ts';
import { CopyError, copyBackend } from '../storage/copy.ts';
import { StorageLockedError } from '../storage/level.ts';
import { describeStore, openBackend } from '../storage/open.ts';
import type { StorageBackend } from '../storage/types.ts';

export class MigrateError extends Error {}

type Kind = Config['storage']['backend'];
const KINDS: Kind[] = ['level', 'postgres'];

export interface MigrateOptions {
  from?: string;
  to?: string;
  path?: string;
  url?: string;
  print: (line: string) => void;
}

export async function migrateStorage(config: Config, o: MigrateOptions): Promise<number> {
  const from = o.from as Kind;
  const to = o.to as Kind;
  if (!KINDS.includes(from) || !KINDS.includes(to) || from === to) {
    throw new MigrateError('usage: jabberfly migrate-storage --from level --to postgres (or --from postgres --to level)');
  }
  const side = (backend: Kind): Config['storage'] => ({
    ...config.storage,
    backend,
    path: o.path ?? config.storage.path,
    url: o.url ?? config.storage.url,
  });
  const source = side(from);
  const target = side(to);
  for (const s of [source, target]) {
    if (s.backend === 'postgres' && !/^postgres(ql)?:\/\//.test(s.url)) {
      throw new MigrateError('the PostgreSQL side needs a postgres:// URL: storage.url, --url or $JABBERFLY_STORAGE_URL');
    }
  }
  const open = async (s: Config['storage']): Promise<StorageBackend> => {
    try {
      return await openBackend(s);
    } catch (err) {
      if (err instanceof StorageLockedError) throw new MigrateError(`${err.message}: stop the server first`);
      throw new MigrateError(`${describeStore(s)}: ${(err as Error).message}`);
    }
  };
  const a = await open(source);
  let b: StorageBackend | undefined;
  try {
    b = await open(target);
    o.print(`copying ${describeStore(source)} (${from}) to ${describeStore(target)} (${to})`);
    const counts = await copyBackend(a, b, (line) => o.print(`  ${line}`));
    for (const c of counts) {
      o.print(`  ${c.store.padEnd(32)} ${Object.entries(c.counts).map(([unit, n]) => `${n} ${unit}`).join(', ')}`);
    }
    o.print(`verified: ${counts.length} store${counts.length === 1 ? '' : 's'}, the same counts on both sides`);
    if (to === 'postgres') o.print(`set storage.backend: postgres (and storage.url) in the configuration to use it`);
    return 0;
  } catch (err) {
    if (err instanceof CopyError) throw new MigrateError(`migration failed: ${err.message}`);
    throw err;
  } finally {
    await b?.close();
    await a.close();
  }
}

// The PostgreSQL schema, as numbered migrations applied in order and
// recorded in `jabberfly_migrations`. A released migration is never edited:
// a change is a new entry at the end. Kept as TypeScript (not .sql files)
// so the single executable carries them with no asset loading.
//
// Text columns that are keys use the "C" collation: byte order, the same
// as LevelDB's, so keyset paging and ranges mean the same on both backends
// and no locale can change an index's order under us.
import type { PoolClient } from 'pg';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'stores',
    sql: `
      -- Named key-value stores (accounts, roster, vcard, ...): JSON per key.
      -- json, not jsonb: the text is kept as written (jsonb refuses \\u0000 and reorders keys).
      CREATE TABLE kv (
        store text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        value json NOT NULL,
        PRIMARY KEY (store, key)
      );
      -- Ordered lists per key (offline messages): seq keeps arrival order.
      CREATE TABLE list_items (
        store text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        item json NOT NULL,
        PRIMARY KEY (store, key, seq)
      );
      -- Pubsub nodes and items of many services (PEP accounts, rooms).
      CREATE TABLE pubsub_nodes (
        store text COLLATE "C" NOT NULL,
        service text COLLATE "C" NOT NULL,
        node text COLLATE "C" NOT NULL,
        record json NOT NULL,
        PRIMARY KEY (store, service, node)
      );
      CREATE SEQUENCE pubsub_item_seq;
      CREATE TABLE pubsub_items (
        store text COLLATE "C" NOT NULL,
        service text COLLATE "C" NOT NULL,
        node text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        item json NOT NULL,
        PRIMARY KEY (store, service, node, id)
      );
      CREATE INDEX pubsub_items_order ON pubsub_items (store, service, node, seq);
      -- Message archives (XEP-0313): ids sort in time order (archive-id.ts).
      CREATE TABLE archive (
        store text COLLATE "C" NOT NULL,
        owner text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        at bigint NOT NULL,
        with_jid text COLLATE "C" NOT NULL,
        xml text NOT NULL,
        PRIMARY KEY (store, owner, id)
      );
      CREATE INDEX archive_with ON archive (store, owner, with_jid, id);
      CREATE INDEX archive_at ON archive (store, at);
      -- HTTP upload records (XEP-0363); the bytes are files under upload.path.
      CREATE TABLE uploads (
        id text COLLATE "C" PRIMARY KEY,
        owner text COLLATE "C" NOT NULL,
        filename text NOT NULL,
        size bigint NOT NULL,
        content_type text NOT NULL,
        created bigint NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'stored')),
        expires bigint
      );
      CREATE INDEX uploads_owner ON uploads (owner);
      CREATE INDEX uploads_expires ON uploads (expires) WHERE expires IS NOT NULL;
      -- Small facts of the backend itself (the highest archive id written).
      CREATE TABLE meta (
        key text COLLATE "C" PRIMARY KEY,
        value text NOT NULL
      );
    `,
  },
];

/** Any fixed number: the advisory lock several nodes starting at once take to migrate one at a time. */
const MIGRATION_LOCK = 0x6a66_0001;

/** Applies the migrations this database lacks; returns the versions applied. */
export async function migrate(client: PoolClient): Promise<number[]> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS jabberfly_migrations (version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ version: number }>('SELECT version FROM jabberfly_migrations');
    const done = new Set(rows.map((r) => r.version));
    const newest = Math.max(0, ...done);
    const known = Math.max(...MIGRATIONS.map((m) => m.version));
    if (newest > known) {
      throw new Error(`the database's schema (version ${newest}) is newer than this jabberfly knows (${known}): upgrade jabberfly`);
    }
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      // Each migration and its record commit together, or not at all.
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO jabberfly_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`);
      }
      applied.push(m.version);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  }
}

// The PostgreSQL backend (storage.backend: postgres): the same stores as
// the LevelDB backend, as tables (pg-migrations.ts), over a connection pool
// of `pg` (node-postgres). Several jabberfly processes may share one
// database (cluster mode, docs/scaling.md): nothing here keeps state that
// another process could contradict, and changes that must not interleave
// (a pubsub node's items) take a transaction-scoped advisory lock.
//
// A write resolves once PostgreSQL committed it (synchronous_commit, its
// default, makes that durable), which is what the durability barrier waits
// for (tracked-backend.ts wraps this backend like the level one).
import pg from 'pg';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { seedArchiveIds } from './archive-id.ts';
import { PgArchive } from './pg-archive.ts';
import { PgExport } from './pg-export.ts';
import { migrate } from './pg-migrations.ts';
import { PgPubsubStore } from './pg-pubsub.ts';
import { PgUploadRecords } from './pg-upload-records.ts';
import type { ArchiveStore, KeyValueStore, ListStore, PubsubStore, StorageBackend, StorageExport, UploadRecordStore } from './types.ts';

/** Keys per round trip when a store's keys are listed. */
const KEY_PAGE = 500;

/** A query target: the pool, or one client inside a transaction. */
export class PgDb {
  constructor(
    readonly pool: pg.Pool,
    private readonly client: pg.PoolClient | null = null,
  ) {}

  get inTransaction(): boolean {
    return this.client !== null;
  }

  /** Named statements are prepared once per connection (the hot ones). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = [], name?: string): Promise<R[]> {
    const target = this.client ?? this.pool;
    const result = await target.query<R>(name ? { name, text, values } : { text, values });
    return result.rows;
  }

  /** Runs `fn` in one transaction (or in the one already open). */
  async tx<T>(fn: (db: PgDb) => Promise<T>): Promise<T> {
    if (this.client) return fn(this);
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(new PgDb(this.pool, client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => {
        broken = e;
      });
      throw err;
    } finally {
      // A connection whose rollback failed is not given back to the pool.
      client.release(broken);
    }
  }
}

export class PgBackend implements StorageBackend {
  private readonly pubsubStores = new Map<string, PgPubsubStore>();
  private readonly archives = new Map<string, PgArchive>();
  private uploads: PgUploadRecords | null = null;

  private constructor(
    private readonly db: PgDb,
    /** The backend this transaction view belongs to (null: this is the root). */
    private readonly root: PgBackend | null,
  ) {}

  /**
   * Connects, brings the schema up to date (several nodes starting at once
   * migrate one at a time) and seeds archive ids from the highest stored.
   */
  static async open(url: string, options: { poolSize?: number; onError?: (err: Error) => void } = {}): Promise<PgBackend> {
    const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    // An idle connection that breaks (server restart) must not crash the process: the pool drops it.
    pool.on('error', (err) => options.onError?.(err));
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      await pool.end().catch(() => {});
      throw new Error(`cannot connect to PostgreSQL (storage.url): ${(err as Error).message}`);
    }
    try {
      await migrate(client);
    } catch (err) {
      client.release();
      await pool.end().catch(() => {});
      throw err;
    }
    client.release();
    const backend = new PgBackend(new PgDb(pool), null);
    const [high] = await backend.db.query<{ value: string }>(`SELECT value FROM meta WHERE key = 'archive-ids'`);
    if (high) seedArchiveIds(high.value);
    return backend;
  }

  /**
   * Writes to one key run in the order they were made, as LevelDB applies
   * them: the pool would otherwise let a later write on another connection
   * overtake an earlier one that was not awaited.
   */
  private readonly writeOrder = new KeyedMutex();

  keyValue<T>(name: string): KeyValueStore<T> {
    const db = this.db;
    const inOrder = <R>(key: string, fn: () => Promise<R>) =>
      db.inTransaction ? fn() : this.writeOrder.run(`${name}\0${key}`, fn);
    return {
      async get(key) {
        const rows = await db.query<{ value: T }>('SELECT value FROM kv WHERE store = $1 AND key = $2', [name, key], 'kv-get');
        return rows[0]?.value;
      },
      async set(key, value) {
        const json = JSON.stringify(value);
        await inOrder(key, () =>
          db.query(
            'INSERT INTO kv (store, key, value) VALUES ($1, $2, $3) ON CONFLICT (store, key) DO UPDATE SET value = EXCLUDED.value',
            [name, key, json],
            'kv-set',
          ),
        );
      },
      async add(key, value) {
        const json = JSON.stringify(value);
        return inOrder(key, async () => {
          const rows = await db.query<{ value: T }>(
            `WITH ins AS (
               INSERT INTO kv (store, key, value) VALUES ($1, $2, $3) ON CONFLICT (store, key) DO NOTHING RETURNING value
             )
             SELECT value FROM ins UNION ALL SELECT value FROM kv WHERE store = $1 AND key = $2`,
            [name, key, json],
            'kv-add',
          );
          if (rows.length) return rows[0]!.value;
          // Another process inserted it after this statement's snapshot was taken: read it now.
          const again = await db.query<{ value: T }>('SELECT value FROM kv WHERE store = $1 AND key = $2', [name, key], 'kv-get');
          return again[0]!.value;
        });
      },
      async delete(key) {
        await inOrder(key, () => db.query('DELETE FROM kv WHERE store = $1 AND key = $2', [name, key], 'kv-del'));
      },
      async *keys() {
        // Keyset paging: a long store is never read into memory at once.
        let after = '';
        for (;;) {
          const rows = await db.query<{ key: string }>(
            'SELECT key FROM kv WHERE store = $1 AND key > $2 ORDER BY key LIMIT $3',
            [name, after, KEY_PAGE],
            'kv-keys',
          );
          for (const r of rows) yield r.key;
          if (rows.length < KEY_PAGE) return;
          after = rows[rows.length - 1]!.key;
        }
      },
    };
  }

  list<T>(name: string): ListStore<T> {
    const db = this.db;
    const inOrder = <R>(key: string, fn: () => Promise<R>) =>
      db.inTransaction ? fn() : this.writeOrder.run(`list\0${name}\0${key}`, fn);
    return {
      async append(key, item) {
        const json = JSON.stringify(item);
        await inOrder(key, () =>
          db.query('INSERT INTO list_items (store, key, item) VALUES ($1, $2, $3)', [name, key, json], 'list-append'),
        );
      },
      async list(key) {
        const rows = await db.query<{ item: T }>(
          'SELECT item FROM list_items WHERE store = $1 AND key = $2 ORDER BY seq',
          [name, key],
          'list-list',
        );
        return rows.map((r) => r.item);
      },
      async count(key) {
        const rows = await db.query<{ n: string }>('SELECT count(*) AS n FROM list_items WHERE store = $1 AND key = $2', [name, key], 'list-count');
        return Number(rows[0]!.n);
      },
      async shift(key, n) {
        await inOrder(key, () =>
          n === undefined
            ? db.query('DELETE FROM list_items WHERE store = $1 AND key = $2', [name, key], 'list-clear')
            : db.query(
                `DELETE FROM list_items WHERE store = $1 AND key = $2 AND seq IN
                   (SELECT seq FROM list_items WHERE store = $1 AND key = $2 ORDER BY seq LIMIT $3)`,
                [name, key, n],
                'list-shift',
              ),
        );
      },
    };
  }

  pubsub(name: string): PubsubStore {
    if (this.root) return new PgPubsubStore(this.db, name);
    let store = this.pubsubStores.get(name);
    if (!store) {
      store = new PgPubsubStore(this.db, name);
      this.pubsubStores.set(name, store);
    }
    return store;
  }

  /** One instance per name: its append queue is shared by every user of that archive. */
  archive(name: string): ArchiveStore {
    // Inside a transaction, through the root's queue (appends committed first) on this client.
    if (this.root) return this.root.archiveOf(name).on(this.db);
    return this.archiveOf(name);
  }

  private archiveOf(name: string): PgArchive {
    let a = this.archives.get(name);
    if (!a) {
      a = new PgArchive(this.db, name);
      this.archives.set(name, a);
    }
    return a;
  }

  uploadRecords(): UploadRecordStore {
    if (this.root) return new PgUploadRecords(this.db);
    this.uploads ??= new PgUploadRecords(this.db);
    return this.uploads;
  }

  transaction<T>(fn: (tx: StorageBackend) => Promise<T>): Promise<T> {
    if (this.root) return fn(this);
    return this.db.tx((db) => fn(new PgBackend(db, this)));
  }

  exporter(): StorageExport {
    return new PgExport(this.db);
  }

  async close(): Promise<void> {
    if (this.root) return;
    for (const a of this.archives.values()) await a.drained();
    await this.db.pool.end();
  }
}

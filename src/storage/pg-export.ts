// Reading a whole PostgreSQL backend store by store (migrate-storage):
// the stores are the distinct `store` values of each table, and every
// listing pages by key (keyset), so nothing is loaded whole.
import type { PgDb } from './pg.ts';
import type { StorageExport, StoreRef, UploadRecord } from './types.ts';
import { PgUploadRecords } from './pg-upload-records.ts';

const PAGE = 500;

export class PgExport implements StorageExport {
  constructor(private readonly db: PgDb) {}

  async stores(): Promise<StoreRef[]> {
    const names = async (sql: string) => (await this.db.query<{ store: string }>(sql)).map((r) => r.store);
    const out: StoreRef[] = [];
    for (const name of await names('SELECT DISTINCT store FROM kv ORDER BY store')) out.push({ kind: 'keyValue', name });
    for (const name of await names('SELECT DISTINCT store FROM list_items ORDER BY store')) out.push({ kind: 'list', name });
    for (const name of await names('SELECT store FROM pubsub_nodes UNION SELECT store FROM pubsub_items ORDER BY store')) {
      out.push({ kind: 'pubsub', name });
    }
    for (const name of await names('SELECT DISTINCT store FROM archive ORDER BY store')) out.push({ kind: 'archive', name });
    if ((await this.db.query('SELECT 1 FROM uploads LIMIT 1')).length) out.push({ kind: 'uploads', name: 'upload' });
    return out;
  }

  /** Distinct values of `column` for one store, in order, a page at a time. */
  private async *distinct(sql: string, name: string): AsyncIterable<string> {
    let after = '';
    for (;;) {
      const rows = await this.db.query<{ v: string }>(sql, [name, after, PAGE]);
      for (const r of rows) yield r.v;
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.v;
    }
  }

  listKeys(name: string): AsyncIterable<string> {
    return this.distinct('SELECT DISTINCT key AS v FROM list_items WHERE store = $1 AND key > $2 ORDER BY v LIMIT $3', name);
  }

  pubsubServices(name: string): AsyncIterable<string> {
    return this.distinct(
      `SELECT v FROM (SELECT service AS v FROM pubsub_nodes WHERE store = $1 UNION SELECT service FROM pubsub_items WHERE store = $1) s
       WHERE v > $2 ORDER BY v LIMIT $3`,
      name,
    );
  }

  archiveOwners(name: string): AsyncIterable<string> {
    return this.distinct('SELECT DISTINCT owner AS v FROM archive WHERE store = $1 AND owner > $2 ORDER BY v LIMIT $3', name);
  }

  async *uploads(): AsyncIterable<UploadRecord> {
    const store = new PgUploadRecords(this.db);
    let after = '';
    for (;;) {
      const rows = await this.db.query<{ id: string }>('SELECT id FROM uploads WHERE id > $1 ORDER BY id LIMIT $2', [after, PAGE]);
      for (const r of rows) {
        const rec = await store.get(r.id);
        if (rec) yield rec;
      }
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.id;
    }
  }
}

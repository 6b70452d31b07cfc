// PubsubStore on PostgreSQL: nodes keyed by (store, service, node), items
// by (store, service, node, id) with a publication sequence from one
// database sequence, so "newest" means the same on every node of a
// cluster. A change that reads and then writes items (publish with a
// limit, trim) runs in one transaction holding an advisory lock on the
// service: the database-wide form of the per-service mutex of the LevelDB
// store, so two nodes publishing to one node never lose or double an item.
import type { PgDb } from './pg.ts';
import type { PubsubItemRecord, PubsubNodeRecord, PubsubStore } from './types.ts';

export class PgPubsubStore implements PubsubStore {
  constructor(
    private readonly db: PgDb,
    private readonly name: string,
  ) {}

  /** Serialises this service's changes across every process sharing the database. */
  private lock(db: PgDb, service: string): Promise<unknown> {
    return db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [JSON.stringify(["pubsub", this.name, service])], 'pubsub-lock');
  }

  async getNode(service: string, node: string): Promise<PubsubNodeRecord | undefined> {
    const rows = await this.db.query<{ record: PubsubNodeRecord }>(
      'SELECT record FROM pubsub_nodes WHERE store = $1 AND service = $2 AND node = $3',
      [this.name, service, node],
      'pubsub-node',
    );
    return rows[0]?.record;
  }

  async nodes(service: string): Promise<PubsubNodeRecord[]> {
    const rows = await this.db.query<{ record: PubsubNodeRecord }>(
      'SELECT record FROM pubsub_nodes WHERE store = $1 AND service = $2 ORDER BY node',
      [this.name, service],
      'pubsub-nodes',
    );
    return rows.map((r) => r.record);
  }

  async putNode(service: string, record: PubsubNodeRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO pubsub_nodes (store, service, node, record) VALUES ($1, $2, $3, $4)
       ON CONFLICT (store, service, node) DO UPDATE SET record = EXCLUDED.record`,
      [this.name, service, record.node, JSON.stringify(record)],
      'pubsub-put-node',
    );
  }

  deleteNode(service: string, node: string): Promise<void> {
    return this.db.tx(async (db) => {
      await this.lock(db, service);
      await db.query('DELETE FROM pubsub_items WHERE store = $1 AND service = $2 AND node = $3', [this.name, service, node]);
      await db.query('DELETE FROM pubsub_nodes WHERE store = $1 AND service = $2 AND node = $3', [this.name, service, node]);
    });
  }

  deleteService(service: string): Promise<void> {
    return this.db.tx(async (db) => {
      await this.lock(db, service);
      await db.query('DELETE FROM pubsub_items WHERE store = $1 AND service = $2', [this.name, service]);
      await db.query('DELETE FROM pubsub_nodes WHERE store = $1 AND service = $2', [this.name, service]);
    });
  }

  putItem(service: string, node: string, item: PubsubItemRecord, keep: number): Promise<string[]> {
    return this.db.tx(async (db) => {
      await this.lock(db, service);
      await db.query(
        `INSERT INTO pubsub_items (store, service, node, id, seq, item) VALUES ($1, $2, $3, $4, nextval('pubsub_item_seq'), $5)
         ON CONFLICT (store, service, node, id) DO UPDATE SET seq = EXCLUDED.seq, item = EXCLUDED.item`,
        [this.name, service, node, item.id, JSON.stringify(item)],
        'pubsub-put-item',
      );
      // The new item is the newest and always stays; older ones beyond `keep` go.
      return this.dropBeyond(db, service, node, Math.max(1, keep));
    });
  }

  async items(service: string, node: string, query: { max?: number; ids?: string[] } = {}): Promise<PubsubItemRecord[]> {
    const key = [this.name, service, node];
    if (query.ids) {
      const rows = await this.db.query<{ item: PubsubItemRecord }>(
        'SELECT item FROM pubsub_items WHERE store = $1 AND service = $2 AND node = $3 AND id = ANY($4::text[]) ORDER BY seq',
        [...key, [...new Set(query.ids)]],
      );
      return rows.map((r) => r.item);
    }
    if (query.max !== undefined) {
      if (query.max <= 0) return [];
      const rows = await this.db.query<{ item: PubsubItemRecord }>(
        'SELECT item FROM pubsub_items WHERE store = $1 AND service = $2 AND node = $3 ORDER BY seq DESC LIMIT $4',
        [...key, query.max],
        'pubsub-newest',
      );
      return rows.map((r) => r.item).reverse();
    }
    const rows = await this.db.query<{ item: PubsubItemRecord }>(
      'SELECT item FROM pubsub_items WHERE store = $1 AND service = $2 AND node = $3 ORDER BY seq',
      key,
      'pubsub-items',
    );
    return rows.map((r) => r.item);
  }

  async deleteItem(service: string, node: string, id: string): Promise<boolean> {
    const rows = await this.db.query(
      'DELETE FROM pubsub_items WHERE store = $1 AND service = $2 AND node = $3 AND id = $4 RETURNING 1',
      [this.name, service, node, id],
      'pubsub-del-item',
    );
    return rows.length > 0;
  }

  trim(service: string, node: string, keep: number): Promise<string[]> {
    return this.db.tx(async (db) => {
      await this.lock(db, service);
      return this.dropBeyond(db, service, node, Math.max(0, keep));
    });
  }

  /** Deletes the items older than the newest `keep`; returns their ids, newest first. */
  private async dropBeyond(db: PgDb, service: string, node: string, keep: number): Promise<string[]> {
    const rows = await db.query<{ id: string }>(
      `WITH old AS (
         SELECT id, seq FROM pubsub_items WHERE store = $1 AND service = $2 AND node = $3 ORDER BY seq DESC OFFSET $4
       ), gone AS (
         DELETE FROM pubsub_items p USING old
         WHERE p.store = $1 AND p.service = $2 AND p.node = $3 AND p.id = old.id RETURNING p.id, old.seq
       )
       SELECT id FROM gone ORDER BY seq DESC`,
      [this.name, service, node, keep],
      'pubsub-drop',
    );
    return rows.map((r) => r.id);
  }
}

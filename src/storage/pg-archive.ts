// Archives on PostgreSQL: one table, primary key (store, owner, id) and an
// index on (store, owner, with_jid, id), so both kinds of MAM query are
// index ranges; ids sort in time order (archive-id.ts). Appends are
// group-committed as in the LevelDB archive: every append of an event-loop
// turn (and those arriving while a batch is written) goes in one INSERT of
// arrays, together with the highest id written, so archiving costs one
// round trip per batch rather than per message. Reads page through the
// index (keyset), so a query never loads a whole archive.
import { archiveIdFloor } from './archive-id.ts';
import type { PgDb } from './pg.ts';
import type { ArchiveEntry, ArchiveRange, ArchiveStore } from './types.ts';

const GATHER_MS = 2;
const GATHER_OPS = 256;
/** Rows per round trip when a query is read. */
const PAGE = 100;

interface Row {
  id: string;
  at: string;
  with_jid: string;
  xml: string;
}

const toEntry = (r: Row): ArchiveEntry => ({ id: r.id, when: Number(r.at), with: r.with_jid, xml: r.xml });

export class PgArchive implements ArchiveStore {
  private queue: Array<{ owner: string; e: ArchiveEntry }> = [];
  private next: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null = null;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: PgDb,
    private readonly name: string,
    /** The shared archive whose queued appends this view waits for (a transaction's view). */
    private readonly parent: PgArchive | null = null,
  ) {}

  /** This archive on another connection (inside a transaction); appends go through at once. */
  on(db: PgDb): PgArchive {
    return new PgArchive(db, this.name, this);
  }

  append(owner: string, e: ArchiveEntry): Promise<void> {
    if (this.parent) return this.insert([{ owner, e }]);
    this.queue.push({ owner, e });
    const promise = this.schedule();
    if (this.queue.length >= GATHER_OPS && !this.inFlight) this.flush();
    return promise;
  }

  private schedule(): Promise<void> {
    if (this.next) return this.next.promise;
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.next = { promise, resolve, reject };
    if (!this.inFlight) this.timer = setTimeout(() => this.flush(), GATHER_MS);
    return promise;
  }

  private flush(): void {
    const waiter = this.next;
    if (!waiter || this.inFlight) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.queue;
    this.queue = [];
    this.next = null;
    this.inFlight = this.insert(batch).then(
      () => waiter.resolve(),
      (err: unknown) => waiter.reject(err),
    );
    void this.inFlight.then(() => {
      this.inFlight = null;
      if (this.next) this.flush();
    });
  }

  /** One statement: the rows, and the highest id ever written (never lowered by another node's older batch). */
  private async insert(rows: Array<{ owner: string; e: ArchiveEntry }>): Promise<void> {
    let high = '';
    for (const r of rows) if (r.e.id > high) high = r.e.id;
    await this.db.query(
      `WITH rows AS (
         INSERT INTO archive (store, owner, id, at, with_jid, xml)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
         ON CONFLICT DO NOTHING
       )
       INSERT INTO meta (key, value) VALUES ('archive-ids', $7)
       ON CONFLICT (key) DO UPDATE SET value = GREATEST(meta.value, EXCLUDED.value)`,
      [
        this.name,
        rows.map((r) => r.owner),
        rows.map((r) => r.e.id),
        rows.map((r) => r.e.when),
        rows.map((r) => r.e.with),
        rows.map((r) => r.e.xml),
        high,
      ],
      'archive-append',
    );
  }

  /** Resolves once every append made so far is written (read-your-writes). */
  async settled(): Promise<void> {
    if (this.parent) return this.parent.settled();
    await (this.next?.promise ?? this.inFlight)?.catch(() => {});
  }

  async drained(): Promise<void> {
    while (this.next || this.inFlight) await this.settled();
  }

  async *query(owner: string, r: ArchiveRange): AsyncIterable<ArchiveEntry> {
    await this.settled();
    // The same bounds as the LevelDB archive: the tighter of id and time on each side.
    const from = r.start !== undefined ? archiveIdFloor(r.start) : undefined;
    const after = r.afterId !== undefined && (from === undefined || r.afterId >= from) ? r.afterId : undefined;
    const to = r.end !== undefined ? archiveIdFloor(r.end + 1) : undefined;
    const upper = r.beforeId !== undefined && (to === undefined || r.beforeId < to) ? r.beforeId : to;
    let left = r.limit ?? Number.POSITIVE_INFINITY;
    if (left <= 0) return;
    const reverse = r.reverse ?? false;
    // Keyset paging: each page starts past the last id of the one before.
    let lowerId = after ?? from ?? '';
    let lowerInclusive = after === undefined;
    let upperId = upper ?? null;
    for (;;) {
      const values: unknown[] = [this.name, owner, lowerId, upperId];
      let sql = `SELECT id, at, with_jid, xml FROM archive WHERE store = $1 AND owner = $2
        AND id ${lowerInclusive ? '>=' : '>'} $3 AND ($4::text IS NULL OR id < $4)`;
      if (r.with !== undefined) {
        values.push(r.with);
        sql += ` AND with_jid = $${values.length}`;
      }
      const size = Math.min(PAGE, left);
      values.push(size);
      sql += ` ORDER BY id ${reverse ? 'DESC' : 'ASC'} LIMIT $${values.length}`;
      const rows = await this.db.query<Row>(sql, values);
      for (const row of rows) {
        yield toEntry(row);
        if (--left === 0) return;
      }
      if (rows.length < size) return;
      const last = rows[rows.length - 1]!.id;
      if (reverse) upperId = last;
      else {
        lowerId = last;
        lowerInclusive = false;
      }
    }
  }

  async get(owner: string, ids: string[]): Promise<Array<ArchiveEntry | undefined>> {
    await this.settled();
    if (ids.length === 0) return [];
    const rows = await this.db.query<Row>(
      'SELECT id, at, with_jid, xml FROM archive WHERE store = $1 AND owner = $2 AND id = ANY($3::text[])',
      [this.name, owner, ids],
    );
    const byId = new Map(rows.map((row) => [row.id, toEntry(row)]));
    return ids.map((id) => byId.get(id));
  }

  async expire(before: number): Promise<number> {
    await this.settled();
    const rows = await this.db.query<{ n: string }>(
      'WITH gone AS (DELETE FROM archive WHERE store = $1 AND at < $2 RETURNING 1) SELECT count(*) AS n FROM gone',
      [this.name, before],
    );
    return Number(rows[0]!.n);
  }

  async removeOwner(owner: string): Promise<void> {
    await this.settled();
    await this.db.query('DELETE FROM archive WHERE store = $1 AND owner = $2', [this.name, owner]);
  }
}

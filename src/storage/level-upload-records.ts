// Upload metadata in LevelDB: records by id, plus two index sublevels
// (owner, expiry) written in the same atomic batch as the record, the way a
// SQL backend would keep an index on each column.
import type { ClassicLevel } from 'classic-level';
import type { UploadRecord, UploadRecordStore } from './types.ts';

type Db = ClassicLevel<string, unknown>;
type Sublevel = ReturnType<Db['sublevel']>;
type BatchOp =
  | { type: 'put'; sublevel: Sublevel; key: string; value: unknown }
  | { type: 'del'; sublevel: Sublevel; key: string };

// Epoch ms fits in 15 digits until the year 33658, so keys sort by time.
const timeKey = (expires: number, id: string) => `${String(expires).padStart(15, '0')}\x00${id}`;
const ownerKey = (owner: string, id: string) => `${owner}\x00${id}`;

export class LevelUploadRecords implements UploadRecordStore {
  private readonly records: Sublevel;
  private readonly byOwnerIndex: Sublevel;
  private readonly byExpiryIndex: Sublevel;

  constructor(
    private readonly db: Db,
    private readonly writeOptions: { sync: boolean },
  ) {
    this.records = db.sublevel('upload', { valueEncoding: 'json' }) as Sublevel;
    this.byOwnerIndex = db.sublevel('upload-owner', { valueEncoding: 'json' }) as Sublevel;
    this.byExpiryIndex = db.sublevel('upload-expires', { valueEncoding: 'json' }) as Sublevel;
  }

  async get(id: string): Promise<UploadRecord | undefined> {
    return (await this.records.get(id)) as UploadRecord | undefined;
  }

  /** Callers serialise writes per id (the upload service does); the old index entries are replaced. */
  async put(record: UploadRecord): Promise<void> {
    const old = await this.get(record.id);
    const ops: BatchOp[] = old ? this.indexDeletes(old) : [];
    ops.push(
      { type: 'put', sublevel: this.records, key: record.id, value: record },
      { type: 'put', sublevel: this.byOwnerIndex, key: ownerKey(record.owner, record.id), value: 1 },
    );
    if (record.expires !== null) {
      ops.push({ type: 'put', sublevel: this.byExpiryIndex, key: timeKey(record.expires, record.id), value: 1 });
    }
    await this.db.batch(ops as never, this.writeOptions);
  }

  async delete(id: string): Promise<void> {
    const old = await this.get(id);
    if (!old) return;
    const ops = [...this.indexDeletes(old), { type: 'del' as const, sublevel: this.records, key: id }];
    await this.db.batch(ops as never, this.writeOptions);
  }

  async byOwner(owner: string): Promise<UploadRecord[]> {
    const keys = await this.byOwnerIndex.keys({ gt: `${owner}\x00`, lt: `${owner}\x01` }).all();
    return this.load(keys.map((k) => k.slice(owner.length + 1)));
  }

  async expiring(time: number, limit: number): Promise<UploadRecord[]> {
    const keys = await this.byExpiryIndex.keys({ lt: timeKey(time, ''), limit }).all();
    return this.load(keys.map((k) => k.slice(k.indexOf('\x00') + 1)));
  }

  private async load(ids: string[]): Promise<UploadRecord[]> {
    if (ids.length === 0) return [];
    const values = (await this.records.getMany(ids)) as Array<UploadRecord | undefined>;
    return values.filter((r): r is UploadRecord => r !== undefined);
  }

  private indexDeletes(old: UploadRecord): BatchOp[] {
    const ops: BatchOp[] = [{ type: 'del', sublevel: this.byOwnerIndex, key: ownerKey(old.owner, old.id) }];
    if (old.expires !== null) {
      ops.push({ type: 'del', sublevel: this.byExpiryIndex, key: timeKey(old.expires, old.id) });
    }
    return ops;
  }
}

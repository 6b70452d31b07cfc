// PubsubStore on LevelDB: one sublevel per store name, three key families
// under it (NUL separates the parts; JIDs and node names cannot hold NUL,
// the XML parser refuses control characters):
//   n\0<service>\0<node>          → node record
//   i\0<service>\0<node>\0<seq>\0<id> → item, in publication order (seq: 20 digits)
//   x\0<service>\0<node>\0<id>    → seq of the item with that id
// Each change of a service is one atomic batch, and changes of one service
// run one at a time (read the index, then write), so an item is never lost
// or doubled by two publishes racing.
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { PubsubItemRecord, PubsubNodeRecord, PubsubStore } from './types.ts';

type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };
interface Range {
  gt?: string;
  lt?: string;
  reverse?: boolean;
  limit?: number;
}

/** The slice of a classic-level sublevel used here (string keys, JSON values). */
export interface PubsubSublevel {
  get(key: string): Promise<unknown>;
  getMany(keys: string[]): Promise<unknown[]>;
  batch(ops: Op[], opts?: object): Promise<void>;
  keys(range?: Range): { all(): Promise<string[]> };
  values(range?: Range): { all(): Promise<unknown[]> };
}

const SEP = '\x00';
const END = '\x01';

export class LevelPubsubStore implements PubsubStore {
  private readonly mutex = new KeyedMutex();
  private seq = Date.now() * 1000;

  constructor(
    private readonly db: PubsubSublevel,
    private readonly writeOptions: { sync: boolean },
  ) {}

  private nextSeq(): string {
    this.seq++;
    return this.seq.toString().padStart(20, '0');
  }

  async getNode(service: string, node: string): Promise<PubsubNodeRecord | undefined> {
    return (await this.db.get(nodeKey(service, node))) as PubsubNodeRecord | undefined;
  }

  async nodes(service: string): Promise<PubsubNodeRecord[]> {
    return (await this.db.values(prefixRange(`n${SEP}${service}${SEP}`)).all()) as PubsubNodeRecord[];
  }

  putNode(service: string, record: PubsubNodeRecord): Promise<void> {
    return this.mutex.run(service, () =>
      this.db.batch([{ type: 'put', key: nodeKey(service, record.node), value: record }], this.writeOptions),
    );
  }

  deleteNode(service: string, node: string): Promise<void> {
    return this.mutex.run(service, async () => {
      const ops: Op[] = [{ type: 'del', key: nodeKey(service, node) }];
      for (const family of ['i', 'x']) {
        for (const key of await this.db.keys(prefixRange(`${family}${SEP}${service}${SEP}${node}${SEP}`)).all()) {
          ops.push({ type: 'del', key });
        }
      }
      await this.db.batch(ops, this.writeOptions);
    });
  }

  deleteService(service: string): Promise<void> {
    return this.mutex.run(service, async () => {
      const ops: Op[] = [];
      for (const family of ['n', 'i', 'x']) {
        for (const key of await this.db.keys(prefixRange(`${family}${SEP}${service}${SEP}`)).all()) {
          ops.push({ type: 'del', key });
        }
      }
      if (ops.length) await this.db.batch(ops, this.writeOptions);
    });
  }

  putItem(service: string, node: string, item: PubsubItemRecord, keep: number): Promise<string[]> {
    return this.mutex.run(service, async () => {
      const ops: Op[] = [];
      const idKey = indexKey(service, node, item.id);
      const oldSeq = (await this.db.get(idKey)) as string | undefined;
      if (oldSeq !== undefined) ops.push({ type: 'del', key: itemKey(service, node, oldSeq, item.id) });
      const seq = this.nextSeq();
      ops.push({ type: 'put', key: itemKey(service, node, seq, item.id), value: item });
      ops.push({ type: 'put', key: idKey, value: seq });
      // The new item counts as one of the `keep`; older ones beyond it go.
      const dropped = await this.excess(service, node, keep - 1, oldSeq && itemKey(service, node, oldSeq, item.id));
      for (const d of dropped) ops.push({ type: 'del', key: d.key }, { type: 'del', key: indexKey(service, node, d.id) });
      await this.db.batch(ops, this.writeOptions);
      return dropped.map((d) => d.id);
    });
  }

  async items(service: string, node: string, query: { max?: number; ids?: string[] } = {}): Promise<PubsubItemRecord[]> {
    if (query.ids) {
      const ids = [...new Set(query.ids)];
      const seqs = (await this.db.getMany(ids.map((id) => indexKey(service, node, id)))) as Array<string | undefined>;
      const keys = ids
        .map((id, i) => (seqs[i] === undefined ? undefined : itemKey(service, node, seqs[i]!, id)))
        .filter((k): k is string => k !== undefined)
        .sort();
      return ((await this.db.getMany(keys)) as Array<PubsubItemRecord | undefined>).filter(
        (i): i is PubsubItemRecord => i !== undefined,
      );
    }
    const range: Range = prefixRange(`i${SEP}${service}${SEP}${node}${SEP}`);
    if (query.max !== undefined) {
      if (query.max <= 0) return [];
      const newest = (await this.db.values({ ...range, reverse: true, limit: query.max }).all()) as PubsubItemRecord[];
      return newest.reverse();
    }
    return (await this.db.values(range).all()) as PubsubItemRecord[];
  }

  deleteItem(service: string, node: string, id: string): Promise<boolean> {
    return this.mutex.run(service, async () => {
      const idKey = indexKey(service, node, id);
      const seq = (await this.db.get(idKey)) as string | undefined;
      if (seq === undefined) return false;
      await this.db.batch(
        [
          { type: 'del', key: itemKey(service, node, seq, id) },
          { type: 'del', key: idKey },
        ],
        this.writeOptions,
      );
      return true;
    });
  }

  trim(service: string, node: string, keep: number): Promise<string[]> {
    return this.mutex.run(service, async () => {
      const dropped = await this.excess(service, node, keep);
      if (dropped.length === 0) return [];
      const ops: Op[] = [];
      for (const d of dropped) ops.push({ type: 'del', key: d.key }, { type: 'del', key: indexKey(service, node, d.id) });
      await this.db.batch(ops, this.writeOptions);
      return dropped.map((d) => d.id);
    });
  }

  /** Items beyond the newest `keep` (not counting `skipKey`, about to be replaced); keys only are read. */
  private async excess(service: string, node: string, keep: number, skipKey?: string): Promise<Array<{ key: string; id: string }>> {
    const prefix = `i${SEP}${service}${SEP}${node}${SEP}`;
    const keys = await this.db.keys({ ...prefixRange(prefix), reverse: true }).all();
    const live = keys.filter((key) => key !== skipKey);
    // After the prefix: 20 digits of seq, NUL, then the id.
    return live.slice(Math.max(0, keep)).map((key) => ({ key, id: key.slice(prefix.length + 21) }));
  }
}

function nodeKey(service: string, node: string): string {
  return `n${SEP}${service}${SEP}${node}`;
}

function itemKey(service: string, node: string, seq: string, id: string): string {
  return `i${SEP}${service}${SEP}${node}${SEP}${seq}${SEP}${id}`;
}

function indexKey(service: string, node: string, id: string): string {
  return `x${SEP}${service}${SEP}${node}${SEP}${id}`;
}

function prefixRange(prefix: string): Range {
  return { gt: prefix, lt: prefix.slice(0, -1) + END };
}

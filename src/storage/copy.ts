// Copying one backend into another (`jabberfly migrate-storage`), store by
// store through the seam's own interfaces, then counting both sides: every
// store's keys, list items, pubsub nodes and items, archive entries and
// upload records must match, or the copy is reported as failed. The target
// must be empty: a copy never merges into data it did not write.
import type { ArchiveEntry, PubsubItemRecord, PubsubNodeRecord, StorageBackend, StoreRef, UploadRecord } from './types.ts';

/** What one store holds, in the units that are compared. */
export interface StoreCount {
  store: string;
  /** e.g. "12 keys", "3 nodes, 40 items". */
  counts: Record<string, number>;
}

const label = (s: StoreRef) => `${s.kind}:${s.name}`;
/** Pubsub items are copied with no limit: the source already applied its own. */
const KEEP_ALL = Number.MAX_SAFE_INTEGER;

export class CopyError extends Error {}

/** Counts everything in a backend, per store. */
export async function countBackend(b: StorageBackend): Promise<Map<string, Record<string, number>>> {
  const ex = b.exporter();
  const out = new Map<string, Record<string, number>>();
  for (const s of await ex.stores()) {
    const c: Record<string, number> = {};
    switch (s.kind) {
      case 'keyValue':
        c.keys = 0;
        for await (const _ of b.keyValue(s.name).keys()) c.keys++;
        break;
      case 'list': {
        c.keys = 0;
        c.items = 0;
        const list = b.list(s.name);
        for await (const key of ex.listKeys(s.name)) {
          c.keys++;
          c.items += await list.count(key);
        }
        break;
      }
      case 'pubsub': {
        c.nodes = 0;
        c.items = 0;
        const ps = b.pubsub(s.name);
        for await (const service of ex.pubsubServices(s.name)) {
          const nodes = await ps.nodes(service);
          c.nodes += nodes.length;
          for (const n of nodes) c.items += (await ps.items(service, n.node)).length;
        }
        break;
      }
      case 'archive': {
        c.owners = 0;
        c.entries = 0;
        const a = b.archive(s.name);
        for await (const owner of ex.archiveOwners(s.name)) {
          c.owners++;
          for await (const _ of a.query(owner, {})) c.entries++;
        }
        break;
      }
      case 'uploads':
        c.records = 0;
        for await (const _ of ex.uploads()) c.records++;
        break;
    }
    out.set(label(s), c);
  }
  return out;
}

/** One piece of a store, as a whole-backend copy (or a backup file, backup.ts) carries it. */
export type StoreRecord =
  | { kind: 'keyValue'; name: string; key: string; value: unknown }
  | { kind: 'list'; name: string; key: string; item: unknown }
  | { kind: 'pubsubNode'; name: string; service: string; node: PubsubNodeRecord }
  | { kind: 'pubsubItem'; name: string; service: string; node: string; item: PubsubItemRecord }
  | { kind: 'archive'; name: string; owner: string; entry: ArchiveEntry }
  | { kind: 'upload'; record: UploadRecord };

/** Every record of every store of `b`, store by store (list items, pubsub items and archive entries in order). */
export async function* readBackend(b: StorageBackend): AsyncGenerator<StoreRecord> {
  const ex = b.exporter();
  for (const s of await ex.stores()) {
    const name = s.name;
    switch (s.kind) {
      case 'keyValue': {
        const src = b.keyValue<unknown>(name);
        for await (const key of src.keys()) {
          const value = await src.get(key);
          if (value !== undefined) yield { kind: 'keyValue', name, key, value };
        }
        break;
      }
      case 'list': {
        const src = b.list<unknown>(name);
        for await (const key of ex.listKeys(name)) for (const item of await src.list(key)) yield { kind: 'list', name, key, item };
        break;
      }
      case 'pubsub': {
        const src = b.pubsub(name);
        for await (const service of ex.pubsubServices(name)) {
          for (const node of await src.nodes(service)) {
            yield { kind: 'pubsubNode', name, service, node };
            // Oldest first: publication order is kept.
            for (const item of await src.items(service, node.node)) yield { kind: 'pubsubItem', name, service, node: node.node, item };
          }
        }
        break;
      }
      case 'archive': {
        const src = b.archive(name);
        // In id order, as appends come.
        for await (const owner of ex.archiveOwners(name)) for await (const entry of src.query(owner, {})) yield { kind: 'archive', name, owner, entry };
        break;
      }
      case 'uploads':
        for await (const record of ex.uploads()) yield { kind: 'upload', record };
        break;
    }
  }
}

const recordStore = (r: StoreRecord): string =>
  r.kind === 'upload' ? 'uploads:upload' : `${r.kind === 'pubsubNode' || r.kind === 'pubsubItem' ? 'pubsub' : r.kind}:${r.name}`;

/** Writes records (from readBackend or a backup file) into `to`; `progress` hears of each store once it is written. */
export async function writeRecords(to: StorageBackend, records: AsyncIterable<StoreRecord>, progress: (line: string) => void = () => {}): Promise<void> {
  // Archive appends are batched (the target groups them); each store's are awaited before the next store.
  let pending: Array<Promise<void>> = [];
  let current: string | null = null;
  const settle = async () => {
    await Promise.all(pending);
    pending = [];
  };
  for await (const r of records) {
    const store = recordStore(r);
    if (store !== current) {
      await settle();
      if (current) progress(`copied ${current}`);
      current = store;
    }
    switch (r.kind) {
      case 'keyValue':
        await to.keyValue<unknown>(r.name).set(r.key, r.value);
        break;
      case 'list':
        await to.list<unknown>(r.name).append(r.key, r.item);
        break;
      case 'pubsubNode':
        await to.pubsub(r.name).putNode(r.service, r.node);
        break;
      case 'pubsubItem':
        await to.pubsub(r.name).putItem(r.service, r.node, r.item, KEEP_ALL);
        break;
      case 'archive':
        pending.push(to.archive(r.name).append(r.owner, r.entry));
        if (pending.length >= 1000) await settle();
        break;
      case 'upload':
        await to.uploadRecords().put(r.record);
        break;
    }
  }
  await settle();
  if (current) progress(`copied ${current}`);
}

/**
 * Copies every store of `from` into the empty `to`, then verifies the
 * counts. Returns them; throws CopyError naming the first store that differs.
 */
export async function copyBackend(from: StorageBackend, to: StorageBackend, progress: (line: string) => void = () => {}): Promise<StoreCount[]> {
  if ((await to.exporter().stores()).length) throw new CopyError('the target store is not empty: migrate-storage copies into an empty one only');
  await writeRecords(to, readBackend(from), progress);
  const [a, b] = [await countBackend(from), await countBackend(to)];
  const counts: StoreCount[] = [];
  for (const [store, c] of a) {
    const got = b.get(store) ?? {};
    for (const [unit, n] of Object.entries(c)) {
      if (got[unit] !== n) throw new CopyError(`${store}: ${n} ${unit} in the source, ${got[unit] ?? 0} in the target`);
    }
    counts.push({ store, counts: c });
  }
  for (const store of b.keys()) if (!a.has(store)) throw new CopyError(`${store}: in the target but not in the source`);
  return counts;
}

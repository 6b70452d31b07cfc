// Copying one backend into another (`jabberfly migrate-storage`), store by
// store through the seam's own interfaces, then counting both sides: every
// store's keys, list items, pubsub nodes and items, archive entries and
// upload records must match, or the copy is reported as failed. The target
// must be empty: a copy never merges into data it did not write.
import type { StorageBackend, StoreRef } from './types.ts';

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

/**
 * Copies every store of `from` into the empty `to`, then verifies the
 * counts. Returns them; throws CopyError naming the first store that differs.
 */
export async function copyBackend(from: StorageBackend, to: StorageBackend, progress: (line: string) => void = () => {}): Promise<StoreCount[]> {
  if ((await to.exporter().stores()).length) throw new CopyError('the target store is not empty: migrate-storage copies into an empty one only');
  const ex = from.exporter();
  for (const s of await ex.stores()) {
    switch (s.kind) {
      case 'keyValue': {
        const src = from.keyValue<unknown>(s.name);
        const dst = to.keyValue<unknown>(s.name);
        for await (const key of src.keys()) {
          const value = await src.get(key);
          if (value !== undefined) await dst.set(key, value);
        }
        break;
      }
      case 'list': {
        const src = from.list<unknown>(s.name);
        const dst = to.list<unknown>(s.name);
        for await (const key of ex.listKeys(s.name)) for (const item of await src.list(key)) await dst.append(key, item);
        break;
      }
      case 'pubsub': {
        const src = from.pubsub(s.name);
        const dst = to.pubsub(s.name);
        for await (const service of ex.pubsubServices(s.name)) {
          for (const node of await src.nodes(service)) {
            await dst.putNode(service, node);
            // Oldest first: publication order is kept.
            for (const item of await src.items(service, node.node)) await dst.putItem(service, node.node, item, KEEP_ALL);
          }
        }
        break;
      }
      case 'archive': {
        const src = from.archive(s.name);
        const dst = to.archive(s.name);
        for await (const owner of ex.archiveOwners(s.name)) {
          // In id order, as appends come; the target batches them.
          const pending: Array<Promise<void>> = [];
          for await (const e of src.query(owner, {})) {
            pending.push(dst.append(owner, e));
            if (pending.length >= 1000) await Promise.all(pending.splice(0));
          }
          await Promise.all(pending);
        }
        break;
      }
      case 'uploads': {
        const dst = to.uploadRecords();
        for await (const r of ex.uploads()) await dst.put(r);
        break;
      }
    }
    progress(`copied ${label(s)}`);
  }
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

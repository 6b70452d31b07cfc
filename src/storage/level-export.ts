// Reading a whole LevelDB backend store by store (migrate-storage). The
// stores are found from the sublevels present, classified by the layouts
// this backend writes (level.ts and its helpers): `pubsub-<name>` holds a
// pubsub store, `<name>` beside `<name>-by-with` an archive, `upload*` the
// upload records, a sublevel whose keys hold NUL a list (keys are
// "<key>\0<sequence>"; no JID or other key-value key holds NUL), and any
// other a key-value store. Every scan skips from one group of keys to the
// next with a bounded read, so nothing is loaded whole.
import type { ClassicLevel } from 'classic-level';
import type { StorageExport, StoreRef, UploadRecord } from './types.ts';

type Db = ClassicLevel<string, unknown>;
interface Keys {
  keys(range: object): { all(): Promise<string[]> };
  values(range: object): AsyncIterable<unknown> & { all(): Promise<unknown[]> };
}

const UPLOAD_SUBLEVELS = new Set(['upload', 'upload-owner', 'upload-expires']);
/** LevelDB-only bookkeeping, rebuilt by the target as it is written. */
const INTERNAL = new Set(['archive-meta']);

export class LevelExport implements StorageExport {
  constructor(private readonly db: Db) {}

  private sub(name: string, valueEncoding = 'json'): Keys {
    return this.db.sublevel<string, unknown>(name, { valueEncoding }) as unknown as Keys;
  }

  /** The first key after `after` (below `below`), or undefined. */
  private async first(sub: Keys, after: string, below?: string): Promise<string | undefined> {
    const [k] = await sub.keys(below === undefined ? { gt: after, limit: 1 } : { gt: after, lt: below, limit: 1 }).all();
    return k;
  }

  private async sublevels(): Promise<string[]> {
    const names: string[] = [];
    let from = '!';
    for (;;) {
      const [key] = await this.db.keys({ gte: from, limit: 1 }).all();
      const end = key?.startsWith('!') ? key.indexOf('!', 1) : -1;
      if (key === undefined || end < 0) return names;
      const name = key.slice(1, end);
      names.push(name);
      // '"' follows '!': the first key after every "!<name>!..." key.
      from = `!${name}"`;
    }
  }

  async stores(): Promise<StoreRef[]> {
    const names = await this.sublevels();
    const present = new Set(names);
    const out: StoreRef[] = [];
    let uploads = false;
    for (const name of names) {
      if (INTERNAL.has(name)) continue;
      if (UPLOAD_SUBLEVELS.has(name)) {
        uploads = true;
        continue;
      }
      if (name.endsWith('-by-with') && present.has(name.slice(0, -'-by-with'.length))) continue;
      if (name.startsWith('pubsub-')) out.push({ kind: 'pubsub', name: name.slice('pubsub-'.length) });
      else if (present.has(`${name}-by-with`)) out.push({ kind: 'archive', name });
      else {
        const k = await this.first(this.sub(name), '');
        if (k === undefined) continue;
        out.push({ kind: k.includes('\x00') ? 'list' : 'keyValue', name });
      }
    }
    if (uploads) out.push({ kind: 'uploads', name: 'upload' });
    return out;
  }

  /** The distinct first parts ("<part>\0...") of a sublevel's keys under `prefix`. */
  private async *groups(sub: Keys, prefix: string): AsyncIterable<string> {
    let after = prefix;
    for (;;) {
      const k = await this.first(sub, after, prefix ? `${prefix.slice(0, -1)}\x01` : undefined);
      if (k === undefined) return;
      const rest = k.slice(prefix.length);
      const cut = rest.indexOf('\x00');
      const group = cut < 0 ? rest : rest.slice(0, cut);
      yield group;
      after = `${prefix}${group}\x01`;
    }
  }

  listKeys(name: string): AsyncIterable<string> {
    return this.groups(this.sub(name), '');
  }

  async *pubsubServices(name: string): AsyncIterable<string> {
    const sub = this.sub(`pubsub-${name}`);
    const seen = new Set<string>();
    for (const family of ['n', 'i']) {
      for await (const service of this.groups(sub, `${family}\x00`)) {
        if (!seen.has(service)) yield service;
        seen.add(service);
      }
    }
  }

  archiveOwners(name: string): AsyncIterable<string> {
    return this.groups(this.sub(name, 'buffer'), '');
  }

  async *uploads(): AsyncIterable<UploadRecord> {
    for await (const value of this.sub('upload').values({})) yield value as UploadRecord;
  }
}

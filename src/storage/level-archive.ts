// Archives on LevelDB, as ordered keys in two sublevels:
//   <name>          "<owner>\0<first id>"          → a segment: up to SEGMENT entries (binary)
//   <name>-by-with  "<owner>\0<with>\0<first id>"  → the segment's key id, then the ids of its entries with <with>
// Ids sort in time order (archive-id.ts), so time ranges are key ranges.
// Appends are group-committed: every append of an event-loop turn, and
// those that arrive while a batch is being written, go into one LevelDB
// batch, where each owner's new entries become a few segments rather than
// a key each. That is what keeps archiving cheap at tens of thousands of
// messages per second: LevelDB's cost (and the JavaScript cost of a batch)
// is per key far more than per byte. A segment's entries are joined as a
// string while it fills and encoded once, when it is sealed (see
// SegmentWriter). Appends to one owner come in id order
// (ids are made just before they are appended), so segments never overlap;
// the highest id written is kept so that ids made after a restart still
// sort after it (archive-id.ts `seedArchiveIds`).
import type { ClassicLevel } from 'classic-level';
import { ARCHIVE_ID_LENGTH, archiveIdFloor, archiveIdTime } from './archive-id.ts';
import type { ArchiveEntry, ArchiveRange, ArchiveStore } from './types.ts';

type Db = ClassicLevel<string, unknown>;
type Sub = ReturnType<Db['sublevel']>;
/** classic-level's implementation of batch(): keys and values already in the database's formats. */
type NativeOp = { type: 'put'; key: string; value: string | Buffer } | { type: 'del'; key: string };
interface NativeBatch {
  _batch(ops: NativeOp[], options: { sync: boolean }): Promise<void>;
}
type Op =
  | { type: 'put'; sublevel: Sub; key: string; value: string | Buffer }
  | { type: 'del'; sublevel: Sub; key: string };

const SEP = '\x00';
// Above every id character ([0-9a-v]), so "<prefix>~" ends a prefix's range.
const END = '~';
/** Entries per segment: big enough to make writes cheap, small enough to read one for a few entries. */
const SEGMENT = 128;
const DELETE_CHUNK = 200;
/** Entries looked up together in a "with" query (a page's worth). */
const BATCH_READ = 64;
/**
 * How long appends gather before they are written (ms), unless many are
 * already waiting. A few milliseconds of gathering turn a burst into full
 * segments; it is also what an acknowledgement of an archived message waits.
 */
const GATHER_MS = 2;
const GATHER_OPS = 256;
/** The key (in `meta`) of the highest id written. */
export const HIGH_WATER = 'archive-ids';

export class LevelArchive implements ArchiveStore {
  private readonly segments: Sub;
  private readonly byWith: Sub;
  /** Per owner, the segment being filled for the next batch. */
  private queued = new Map<string, SegmentWriter>();
  private ops: Op[] = [];
  private next: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null = null;
  private inFlight: Promise<void> | null = null;
  private highWater = '';

  constructor(
    private readonly db: Db,
    name: string,
    private readonly meta: Sub,
    private readonly writeOptions: { sync: boolean },
  ) {
    this.segments = db.sublevel<string, Buffer>(name, { valueEncoding: 'buffer' }) as unknown as Sub;
    this.byWith = db.sublevel<string, string>(`${name}-by-with`, { valueEncoding: 'utf8' }) as unknown as Sub;
  }

  append(owner: string, e: ArchiveEntry): Promise<void> {
    let w = this.queued.get(owner);
    if (!w) {
      w = new SegmentWriter();
      this.queued.set(owner, w);
    }
    w.add(e);
    if (w.count === SEGMENT) {
      this.seal(owner, w);
      this.queued.delete(owner);
    }
    if (e.id > this.highWater) this.highWater = e.id;
    const promise = this.schedule();
    if (this.ops.length >= GATHER_OPS && !this.inFlight) this.flush();
    return promise;
  }

  /**
   * Turns a filled segment into its puts: the segment, and per correspondent
   * the segment's key and its entries' ids (so a page "with" someone reads
   * its segments directly, many in one call).
   */
  private seal(owner: string, w: SegmentWriter): void {
    this.ops.push({ type: 'put', sublevel: this.segments, key: owner + SEP + w.firstId, value: w.bytes() });
    for (const [withJid, ids] of w.byWith) {
      this.ops.push({
        type: 'put',
        sublevel: this.byWith,
        key: owner + SEP + withJid + SEP + ids.slice(0, ARCHIVE_ID_LENGTH),
        value: w.firstId + ids,
      });
    }
  }

  /** The promise of the batch that will carry what is queued now. */
  private schedule(): Promise<void> {
    if (this.next) return this.next.promise;
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.next = { promise, resolve, reject };
    // Gather appends for a moment; a batch in flight takes the next ones when it is done.
    if (!this.inFlight) this.timer = setTimeout(() => this.flush(), GATHER_MS);
    return promise;
  }
  private timer: NodeJS.Timeout | null = null;

  private flush(): void {
    const waiter = this.next;
    if (!waiter || this.inFlight) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const [owner, w] of this.queued) this.seal(owner, w);
    this.queued = new Map();
    const ops = this.ops;
    this.ops = [];
    this.next = null;
    ops.push({ type: 'put', sublevel: this.meta, key: HIGH_WATER, value: this.highWater });
    this.inFlight = this.write(ops).then(
      () => waiter.resolve(),
      (err: unknown) => waiter.reject(err),
    );
    void this.inFlight.then(() => {
      this.inFlight = null;
      // What came meanwhile gathers a while longer (a batch right away would be a small one).
      if (this.next) {
        if (this.ops.length >= GATHER_OPS) this.flush();
        else this.timer = setTimeout(() => this.flush(), GATHER_MS);
      }
    });
  }

  /**
   * Writes a batch of puts. abstract-level's public batch() spends several
   * microseconds of JavaScript per operation on the event loop (merging
   * options, looking up encodings, prefixing), measured at about five
   * times LevelDB's own work for a segment. The archive's keys are strings
   * and its values strings or buffers, the formats classic-level's
   * implementation method `_batch` takes as they are, so the sublevel
   * prefix is added here and the batch handed over directly. Only while
   * the database is open: otherwise the public path reports the state.
   */
  private write(ops: Op[]): Promise<void> {
    if (this.db.status !== 'open') return this.db.batch(ops as never, this.writeOptions);
    const raw = ops.map((op): NativeOp =>
      op.type === 'put'
        ? { type: 'put', key: op.sublevel.prefix + op.key, value: op.value }
        : { type: 'del', key: op.sublevel.prefix + op.key },
    );
    return (this.db as unknown as NativeBatch)._batch(raw, this.writeOptions);
  }

  /**
   * Resolves once every append made so far is written (read-your-writes).
   * Only the batch holding them is awaited, so a steady stream of new
   * appends cannot starve a reader.
   */
  async settled(): Promise<void> {
    await (this.next?.promise ?? this.inFlight)?.catch(() => {});
  }

  /** Resolves when nothing is queued or being written (before closing). */
  async drained(): Promise<void> {
    while (this.next || this.inFlight) await this.settled();
  }

  async *query(owner: string, r: ArchiveRange): AsyncIterable<ArchiveEntry> {
    await this.settled();
    // Bounds by id: the later of "after this id" (exclusive) and "from this
    // time" (inclusive, as "after the id just below"); the earlier of
    // "before this id" and "up to this time" (both exclusive).
    const from = r.start !== undefined ? archiveIdFloor(r.start) : undefined;
    const after = r.afterId !== undefined && (from === undefined || r.afterId >= from) ? r.afterId : undefined;
    const lower = after ?? from ?? '';
    const lowerInclusive = after === undefined;
    const to = r.end !== undefined ? archiveIdFloor(r.end + 1) : undefined;
    const upper = r.beforeId !== undefined && (to === undefined || r.beforeId < to) ? r.beforeId : (to ?? END);
    const inRange = (id: string) => (lowerInclusive ? id >= lower : id > lower) && id < upper;
    let left = r.limit ?? Number.POSITIVE_INFINITY;
    if (left <= 0) return;

    if (r.with === undefined) {
      for await (const segment of this.scan(this.segments, owner + SEP, lower, upper, r.reverse ?? false)) {
        const entries = decode(segment as Buffer);
        if (r.reverse) entries.reverse();
        for (const e of entries) {
          if (!inRange(e.id)) continue;
          yield e;
          if (--left === 0) return;
        }
      }
      return;
    }
    // The correspondent index gives ids and their segments; those are read
    // a batch at a time (one call for up to a page's worth).
    const prefix = owner + SEP + r.with + SEP;
    let wanted: Array<{ id: string; segment: string }> = [];
    const resolve = async (): Promise<ArchiveEntry[]> => {
      const keys = [...new Set(wanted.map((w) => w.segment))];
      const values = (await this.segments.getMany(keys.map((k) => owner + SEP + k))) as Array<Buffer | undefined>;
      const byKey = new Map(keys.map((k, i) => [k, values[i]]));
      const found: ArchiveEntry[] = [];
      for (const w of wanted) {
        const segment = byKey.get(w.segment);
        const e = segment && findEntry(segment, w.id);
        if (e) found.push(e);
      }
      wanted = [];
      return found;
    };
    for await (const v of this.scan(this.byWith, prefix, lower, upper, r.reverse ?? false)) {
      const value = v as string;
      const segment = value.slice(0, ARCHIVE_ID_LENGTH);
      const ids: string[] = [];
      for (let i = ARCHIVE_ID_LENGTH; i < value.length; i += ARCHIVE_ID_LENGTH) ids.push(value.slice(i, i + ARCHIVE_ID_LENGTH));
      if (r.reverse) ids.reverse();
      for (const id of ids) if (inRange(id)) wanted.push({ id, segment });
      if (wanted.length < Math.min(left, BATCH_READ)) continue;
      for (const e of await resolve()) {
        yield e;
        if (--left === 0) return;
      }
    }
    if (wanted.length) {
      for (const e of await resolve()) {
        yield e;
        if (--left === 0) return;
      }
    }
  }

  /**
   * Values of the keys "<prefix><first id>" that may hold ids in
   * [lower, upper): from the one holding `lower` (the last starting at or
   * before it) up to those starting before `upper`, in order or reversed.
   */
  private async *scan(
    sub: Sub,
    prefix: string,
    lower: string,
    upper: string,
    reverse: boolean,
  ): AsyncIterable<string | Buffer> {
    const holding = (await sub.keys({ gte: prefix, lte: prefix + lower, reverse: true, limit: 1 } as never).all()) as string[];
    const start = holding[0] ?? prefix;
    const it = sub.iterator({ gte: start, lt: prefix + upper, reverse } as never);
    try {
      for (;;) {
        const chunk = (await it.nextv(8)) as Array<[string, string | Buffer]>;
        if (chunk.length === 0) return;
        for (const [, value] of chunk) yield value;
      }
    } finally {
      await it.close();
    }
  }

  async get(owner: string, ids: string[]): Promise<Array<ArchiveEntry | undefined>> {
    await this.settled();
    const lookup = new SegmentLookup(this.segments, owner);
    const out: Array<ArchiveEntry | undefined> = [];
    for (const id of ids) out.push(id.length === ARCHIVE_ID_LENGTH ? await lookup.get(id) : undefined);
    return out;
  }

  async expire(before: number): Promise<number> {
    await this.settled();
    const bound = archiveIdFloor(before);
    let removed = 0;
    let after = '';
    // Skip from one owner to the next: the first key after the previous owner's range.
    for (;;) {
      const [first] = (await this.segments.keys({ gt: after, limit: 1 } as never).all()) as string[];
      if (first === undefined) return removed;
      const owner = first.slice(0, first.indexOf(SEP));
      removed += await this.trim(owner, bound);
      after = `${owner}\x01`;
    }
  }

  async removeOwner(owner: string): Promise<void> {
    await this.settled();
    for (const sub of [this.segments, this.byWith]) {
      for (;;) {
        const keys = (await sub.keys({ gte: owner + SEP, lt: `${owner}\x01`, limit: DELETE_CHUNK } as never).all()) as string[];
        if (keys.length === 0) break;
        await this.db.batch(keys.map((key) => ({ type: 'del', sublevel: sub, key })) as never, this.writeOptions);
      }
    }
  }

  /** Removes an owner's entries with ids below `bound` from both indexes; returns how many. */
  private async trim(owner: string, bound: string): Promise<number> {
    let removed = 0;
    // Segments wholly below the bound go; the one straddling it is rewritten without its old entries.
    let after = owner;
    for (;;) {
      const old = (await this.segments
        .iterator({ gt: after, lt: owner + SEP + bound, limit: DELETE_CHUNK } as never)
        .all()) as Array<[string, Buffer]>;
      if (old.length === 0) break;
      after = old[old.length - 1]![0];
      const ops: Op[] = [];
      for (const [key, value] of old) {
        const entries = decode(value);
        const keep = entries.filter((e) => e.id >= bound);
        removed += entries.length - keep.length;
        // A cut segment keeps its key (all its entries still sort after it): the
        // correspondent index names segments by key.
        if (keep.length) {
          const w = new SegmentWriter();
          for (const e of keep) w.add(e);
          ops.push({ type: 'put', sublevel: this.segments, key, value: w.bytes() });
        } else {
          ops.push({ type: 'del', sublevel: this.segments, key });
        }
      }
      await this.db.batch(ops as never, this.writeOptions);
    }
    // The correspondent index: every correspondent's keys starting below the bound.
    let from = owner + SEP;
    for (;;) {
      const keys = (await this.byWith.keys({ gt: from, lt: `${owner}\x01`, limit: DELETE_CHUNK } as never).all()) as string[];
      if (keys.length === 0) break;
      from = keys[keys.length - 1]!;
      const old = keys.filter((k) => k.slice(-ARCHIVE_ID_LENGTH) < bound);
      if (old.length === 0) continue;
      const values = (await this.byWith.getMany(old)) as Array<string | undefined>;
      const ops: Op[] = [];
      old.forEach((key, i) => {
        const value = values[i] ?? '';
        let keep = '';
        for (let j = ARCHIVE_ID_LENGTH; j < value.length; j += ARCHIVE_ID_LENGTH) {
          const id = value.slice(j, j + ARCHIVE_ID_LENGTH);
          if (id >= bound) keep += id;
        }
        ops.push({ type: 'del', sublevel: this.byWith, key });
        if (keep) {
          const w = key.slice(0, key.length - ARCHIVE_ID_LENGTH);
          const segment = value.slice(0, ARCHIVE_ID_LENGTH);
          ops.push({ type: 'put', sublevel: this.byWith, key: w + keep.slice(0, ARCHIVE_ID_LENGTH), value: segment + keep });
        }
      });
      await this.db.batch(ops as never, this.writeOptions);
    }
    return removed;
  }
}

/** Finds entries by id in an owner's segments, keeping the last segment read (ids come in order). */
class SegmentLookup {
  private cached: ArchiveEntry[] = [];

  constructor(
    private readonly segments: Sub,
    private readonly owner: string,
  ) {}

  async get(id: string): Promise<ArchiveEntry | undefined> {
    const c = this.cached;
    if (!(c.length && id >= c[0]!.id && id <= c[c.length - 1]!.id)) {
      // The segment that would hold it: the last one starting at or before it.
      const prefix = this.owner + SEP;
      const [hit] = (await this.segments
        .iterator({ gte: prefix, lte: prefix + id, reverse: true, limit: 1 } as never)
        .all()) as Array<[string, Buffer]>;
      if (!hit) return undefined;
      this.cached = decode(hit[1]);
    }
    return this.cached.find((e) => e.id === id);
  }
}

// A segment, as written: a version byte (1), then the UTF-8 of, for each
// entry, its id (16 characters), the lengths of its correspondent and of
// its XML in UTF-16 units (base 36, each ended by ':'), then those two
// strings. Appending is string concatenation and a segment is encoded
// once, when it is sealed: one native call per segment instead of three
// buffer writes per entry, which were most of an append's cost.
// Segments written before (version 0, no version byte: they start with an
// id character) hold, per entry, the id in 16 bytes, then the correspondent
// and the XML each as a 32-bit byte length and UTF-8; both are read.
const SEGMENT_V1 = 1;

class SegmentWriter {
  private text = '';
  count = 0;
  firstId = '';
  /** Per correspondent, the ids of its entries (concatenated). */
  readonly byWith = new Map<string, string>();

  add(e: ArchiveEntry): void {
    this.text += `${e.id}${e.with.length.toString(36)}:${e.xml.length.toString(36)}:${e.with}${e.xml}`;
    if (this.count++ === 0) this.firstId = e.id;
    this.byWith.set(e.with, (this.byWith.get(e.with) ?? '') + e.id);
  }

  bytes(): Buffer {
    const out = Buffer.allocUnsafe(1 + Buffer.byteLength(this.text));
    out[0] = SEGMENT_V1;
    out.write(this.text, 1, 'utf8');
    return out;
  }
}

/** Calls `each` with the entries of a segment in order until it returns true. */
function scanSegment(value: Buffer, each: (id: string, withJid: string, xml: string) => boolean | void): void {
  if (value.length && value[0] === SEGMENT_V1) {
    const text = value.toString('utf8', 1);
    let at = 0;
    while (at < text.length) {
      const id = text.slice(at, at + ARCHIVE_ID_LENGTH);
      const c1 = text.indexOf(':', at + ARCHIVE_ID_LENGTH);
      const c2 = text.indexOf(':', c1 + 1);
      const w = Number.parseInt(text.slice(at + ARCHIVE_ID_LENGTH, c1), 36);
      const x = Number.parseInt(text.slice(c1 + 1, c2), 36);
      if (c1 < 0 || c2 < 0 || !(w >= 0) || !(x >= 0) || c2 + 1 + w + x > text.length) throw new Error('corrupt archive segment');
      const withJid = text.slice(c2 + 1, c2 + 1 + w);
      if (each(id, withJid, text.slice(c2 + 1 + w, c2 + 1 + w + x))) return;
      at = c2 + 1 + w + x;
    }
    return;
  }
  let at = 0;
  while (at < value.length) {
    const id = value.toString('latin1', at, at + ARCHIVE_ID_LENGTH);
    const w = value.readUInt32BE(at + ARCHIVE_ID_LENGTH);
    const withAt = at + ARCHIVE_ID_LENGTH + 4;
    const x = value.readUInt32BE(withAt + w);
    const xmlAt = withAt + w + 4;
    if (each(id, value.toString('utf8', withAt, withAt + w), value.toString('utf8', xmlAt, xmlAt + x))) return;
    at = xmlAt + x;
  }
}

/** One entry of a segment, found by id. */
function findEntry(value: Buffer, id: string): ArchiveEntry | undefined {
  let found: ArchiveEntry | undefined;
  scanSegment(value, (eid, withJid, xml) => {
    if (eid !== id) return false;
    found = { id, when: archiveIdTime(id), with: withJid, xml };
    return true;
  });
  return found;
}

function decode(value: Buffer): ArchiveEntry[] {
  const out: ArchiveEntry[] = [];
  scanSegment(value, (id, withJid, xml) => {
    out.push({ id, when: archiveIdTime(id), with: withJid, xml });
  });
  return out;
}

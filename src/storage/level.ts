// The default backend: one LevelDB (classic-level) database under
// storage.path, one sublevel per named store. Writes go to LevelDB's log
// before they resolve, so an acknowledged write survives `kill -9` of the
// process; `storage.sync: true` also survives power loss (fsync per write).
import { ClassicLevel } from 'classic-level';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { seedArchiveIds } from './archive-id.ts';
import { HIGH_WATER, LevelArchive } from './level-archive.ts';
import { LevelPubsubStore, type PubsubSublevel } from './level-pubsub.ts';
import { LevelExport } from './level-export.ts';
import { prepareLevelFolder, restrict, StorageFolderError } from './level-folder.ts';
import { LevelUploadRecords } from './level-upload-records.ts';
import type { ArchiveStore, KeyValueStore, ListStore, PubsubStore, StorageBackend, StorageExport, UploadRecordStore } from './types.ts';

type Db = ClassicLevel<string, unknown>;

/**
 * LevelDB's in-memory table before it is written out as a file (its
 * default is 4 MiB). The message archive writes a few hundred bytes per
 * message and user; with 4 MiB, tables were flushed and compacted several
 * times a second under load, on the core the clients share. 16 MiB
 * measured 150,000–176,000 archived messages/s against 138,000–146,000,
 * and about 10 points of a core less (bench archive figure, 2 cores);
 * 32 MiB, 8 MiB table files instead of 2, or 16 KiB blocks did no
 * better. The memory is only taken as data is written, and a restart
 * replays at most this much log.
 */
const WRITE_BUFFER = 16 * 1024 * 1024;

/** The store is open in another process (a running server); the CLI then uses the admin socket. */
export class StorageLockedError extends Error {}
// The slice of a sublevel's API used here, typed for string keys / JSON values.
interface Sub {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown, opts?: object): Promise<void>;
  del(key: string, opts?: object): Promise<void>;
  batch(ops: Array<{ type: 'del'; key: string }>, opts?: object): Promise<void>;
  keys(range?: object): AsyncIterable<string> & { all(): Promise<string[]> };
  values(range?: object): { all(): Promise<unknown[]> };
}

export class LevelBackend implements StorageBackend {
  private readonly db: Db;
  private readonly writeOptions: { sync: boolean };
  /** One instance per name: each serialises its own writes. */
  private readonly pubsubStores = new Map<string, LevelPubsubStore>();
  /** Shared by every archive: the highest archive id written. */
  private readonly archiveMeta: Sub;

  private constructor(db: Db, sync: boolean) {
    this.db = db;
    this.writeOptions = { sync };
    this.archiveMeta = db.sublevel<string, string>('archive-meta', { valueEncoding: 'utf8' }) as unknown as Sub;
  }

  static async open(path: string, sync = false): Promise<LevelBackend> {
    // 0700/0600: the store holds password keys, and the admin socket lives
    // here by default. A non-empty folder must hold an intact store: LevelDB
    // would otherwise start an empty one over it (level-folder.ts).
    const fresh = prepareLevelFolder(path);
    const db: Db = new ClassicLevel<string, unknown>(path, {
      valueEncoding: 'json',
      createIfMissing: fresh,
      writeBufferSize: WRITE_BUFFER,
    });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new StorageLockedError(`storage at ${path} is in use by another jabberfly process`);
      }
      throw new StorageFolderError(
        `the store in ${path} cannot be opened: ${cause?.message ?? (err as Error).message}. ` +
          'Restore it from a backup (jabberfly restore FILE into an empty folder), or try `jabberfly repair-storage` ' +
          '(copy the folder somewhere first).',
      );
    }
    // Files LevelDB just made (a new log, a new MANIFEST) follow the process umask: 0600 them too.
    restrict(path);
    const backend = new LevelBackend(db, sync);
    // Archive ids made from now on sort after every one already stored.
    const highWater = (await backend.archiveMeta.get(HIGH_WATER)) as string | undefined;
    if (highWater) seedArchiveIds(highWater);
    return backend;
  }

  private sub(name: string): Sub {
    return this.db.sublevel<string, unknown>(name, { valueEncoding: 'json' }) as unknown as Sub;
  }

  /**
   * Orders the writes to each key: classic-level runs every write on the
   * libuv thread pool, where two writes to one key that are both pending may
   * reach LevelDB in either order (a later value overwritten by an earlier
   * one). One process holds a LevelDB store, so a mutex here is enough; it
   * also serialises `add` with the other writes.
   */
  private readonly writing = new KeyedMutex();

  keyValue<T>(name: string): KeyValueStore<T> {
    const sub = this.sub(name);
    const opts = this.writeOptions;
    const writing = this.writing;
    return {
      async get(key) {
        return (await sub.get(key)) as T | undefined;
      },
      set(key, value) {
        return writing.run(`${name}\0${key}`, () => sub.put(key, value, opts));
      },
      add(key, value) {
        return writing.run(`${name}\0${key}`, async () => {
          const had = (await sub.get(key)) as T | undefined;
          if (had !== undefined) return had;
          await sub.put(key, value, opts);
          return value;
        });
      },
      delete(key) {
        return writing.run(`${name}\0${key}`, () => sub.del(key, opts));
      },
      async *keys() {
        for await (const k of sub.keys()) yield k;
      },
    };
  }

  list<T>(name: string): ListStore<T> {
    const sub = this.sub(name);
    const opts = this.writeOptions;
    // Items live at "<key>\x00<16-digit sequence>"; the sequence keeps order.
    let seq = Date.now() * 1000;
    const range = (key: string) => ({ gt: `${key}\x00`, lt: `${key}\x01` });
    return {
      async append(key, item) {
        seq++;
        await sub.put(`${key}\x00${seq.toString().padStart(20, '0')}`, item, opts);
      },
      async list(key) {
        return (await sub.values(range(key)).all()) as T[];
      },
      async count(key) {
        return (await sub.keys(range(key)).all()).length;
      },
      async shift(key, n) {
        const keys = await sub.keys({ ...range(key), limit: n ?? -1 }).all();
        if (keys.length) await sub.batch(keys.map((k) => ({ type: 'del' as const, key: k })), opts);
      },
    };
  }

  pubsub(name: string): PubsubStore {
    let store = this.pubsubStores.get(name);
    if (!store) {
      const sub = this.db.sublevel<string, unknown>(`pubsub-${name}`, { valueEncoding: 'json' });
      store = new LevelPubsubStore(sub as unknown as PubsubSublevel, this.writeOptions);
      this.pubsubStores.set(name, store);
    }
    return store;
  }

  private readonly archives = new Map<string, LevelArchive>();

  /** One instance per name: its write queue must be shared by every user of that archive. */
  archive(name: string): ArchiveStore {
    let a = this.archives.get(name);
    if (!a) {
      a = new LevelArchive(this.db, name, this.archiveMeta as never, this.writeOptions);
      this.archives.set(name, a);
    }
    return a;
  }

  private uploads: LevelUploadRecords | null = null;

  uploadRecords(): UploadRecordStore {
    this.uploads ??= new LevelUploadRecords(this.db, this.writeOptions);
    return this.uploads;
  }

  /** No multi-store transactions in LevelDB: each change is durable as made (see types.ts). */
  transaction<T>(fn: (tx: StorageBackend) => Promise<T>): Promise<T> {
    return fn(this);
  }

  exporter(): StorageExport {
    return new LevelExport(this.db);
  }

  async close(): Promise<void> {
    for (const a of this.archives.values()) await a.drained();
    await this.db.close();
  }

  /**
   * Rebuilds a damaged store's metadata from its table and log files
   * (LevelDB's RepairDB: whatever it can still read is kept; a new CURRENT
   * and MANIFEST are written). The store must not be open.
   */
  static async repair(path: string): Promise<void> {
    // LevelDB's repair does not take the store's lock: an open attempt
    // (which takes it first, and creates nothing here) finds a running server.
    const probe = new ClassicLevel(path, { createIfMissing: false });
    try {
      await probe.open();
      await probe.close();
    } catch (err) {
      if ((err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED') {
        throw new StorageLockedError(`storage at ${path} is in use by another jabberfly process`);
      }
    }
    await ClassicLevel.repair(path);
    restrict(path);
  }
}

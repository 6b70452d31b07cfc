// The narrow interfaces every feature stores through. A module sees named
// stores of JSON values keyed by string (usually a bare JID); it never sees
// key encodings or the database. A second backend is one new file.

export interface KeyValueStore<T> {
  get(key: string): Promise<T | undefined>;
  set(key: string, value: T): Promise<void>;
  /**
   * Stores `value` unless the key already has one; returns what is stored
   * then. Atomic across every process sharing the backend (a secret made
   * on first start by several cluster nodes at once ends up one secret).
   */
  add(key: string, value: T): Promise<T>;
  delete(key: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

/** An ordered list of items per key (offline messages, archives). */
export interface ListStore<T> {
  append(key: string, item: T): Promise<void>;
  list(key: string): Promise<T[]>;
  count(key: string): Promise<number>;
  /** Removes the first `n` items (all when n is omitted). */
  shift(key: string, n?: number): Promise<void>;
}

/**
 * A publish-subscribe node as stored: its configuration, affiliations and
 * subscriptions, as JSON the pubsub core reads (src/pubsub/).
 */
export interface PubsubNodeRecord {
  node: string;
  config: Record<string, unknown>;
  /** Bare JID → affiliation ('owner', 'publisher', 'member', 'outcast', ...). */
  affiliations: Record<string, string>;
  /** Subscribed JID (bare or full) → subscription. */
  subscriptions: Record<string, { subid: string }>;
  /** Epoch ms. */
  created: number;
}

/** One published item; `payload` is the item's XML as published. */
export interface PubsubItemRecord {
  id: string;
  /** JID of the entity that published it. */
  publisher: string;
  payload: string;
  /** Epoch ms. */
  published: number;
}

/**
 * Pubsub nodes and items of many services (a service is one JID: a user's
 * PEP account, later a MUC room or a pubsub component). Items of a node are
 * kept in publication order; re-publishing an id makes that item the newest.
 * Shaped for SQL as much as for a key-value store: one table of nodes keyed
 * by (service, node), one of items keyed by (service, node, id) with a
 * publication sequence.
 */
export interface PubsubStore {
  getNode(service: string, node: string): Promise<PubsubNodeRecord | undefined>;
  /** Every node of a service, in node-name order. */
  nodes(service: string): Promise<PubsubNodeRecord[]>;
  /** Creates or replaces a node record (items untouched). */
  putNode(service: string, record: PubsubNodeRecord): Promise<void>;
  /** Removes a node and all its items. */
  deleteNode(service: string, node: string): Promise<void>;
  /** Removes every node and item of a service (account deletion). */
  deleteService(service: string): Promise<void>;
  /**
   * Adds an item, or replaces the one with the same id (it becomes the
   * newest), then keeps only the newest `keep`; returns the ids dropped.
   */
  putItem(service: string, node: string, item: PubsubItemRecord, keep: number): Promise<string[]>;
  /** Items oldest first: the newest `max` when given, only `ids` when given. */
  items(service: string, node: string, query?: { max?: number; ids?: string[] }): Promise<PubsubItemRecord[]>;
  /** Removes one item; false when there was none with that id. */
  deleteItem(service: string, node: string, id: string): Promise<boolean>;
  /** Keeps only the newest `keep` items; returns the ids dropped. */
  trim(service: string, node: string, keep: number): Promise<string[]>;
}

/** One uploaded file (XEP-0363) or open upload slot; the bytes live on disk under upload.path. */
export interface UploadRecord {
  /** Random, URL-safe; names the file on disk and in its URL. */
  id: string;
  /** Bare JID whose quota the file counts against and whose account deletion removes it. */
  owner: string;
  filename: string;
  size: number;
  contentType: string;
  /** Epoch ms the slot was issued. */
  created: number;
  /** 'pending': a slot waiting for its PUT; 'stored': the file is complete. */
  state: 'pending' | 'stored';
  /** Epoch ms after which it is removed (a slot's deadline while pending); null: never. */
  expires: number | null;
}

/**
 * Upload metadata. Shaped as one table with indexes on owner and expiry
 * (PostgreSQL: `uploads(id primary key, owner, ..., expires)` with
 * `index(owner)` and `index(expires)`).
 */
export interface UploadRecordStore {
  get(id: string): Promise<UploadRecord | undefined>;
  /** Inserts or replaces the record with this id. */
  put(record: UploadRecord): Promise<void>;
  delete(id: string): Promise<void>;
  byOwner(owner: string): Promise<UploadRecord[]>;
  /** Up to `limit` records with `expires` before `time`, soonest first. */
  expiring(time: number, limit: number): Promise<UploadRecord[]>;
}

export interface StorageBackend {
  keyValue<T>(name: string): KeyValueStore<T>;
  list<T>(name: string): ListStore<T>;
  /** Pubsub nodes and items under one name (e.g. 'pep'). */
  pubsub(name: string): PubsubStore;
  /** A named set of archives (the user archive `mam`, room archives). */
  archive(name: string): ArchiveStore;
  /** Upload metadata (XEP-0363). */
  uploadRecords(): UploadRecordStore;
  /**
   * Runs `fn` with a view of this backend whose changes commit together or
   * not at all (PostgreSQL: one transaction; account deletion spans
   * stores). LevelDB has no multi-store transaction over async work: there
   * `fn` runs on the backend itself and each change is durable as made.
   */
  transaction<T>(fn: (tx: StorageBackend) => Promise<T>): Promise<T>;
  /** Reads the whole backend store by store (copying it elsewhere: `migrate-storage`). */
  exporter(): StorageExport;
  close(): Promise<void>;
}

/** A named store of one kind, as found in a backend. */
export interface StoreRef {
  kind: 'keyValue' | 'list' | 'pubsub' | 'archive' | 'uploads';
  name: string;
}

/**
 * What the stores' own interfaces do not list: which stores hold data and
 * the keys of those that are read by key. Slow paths, for whole-backend
 * copies only; each streams, so no store is read into memory at once.
 */
export interface StorageExport {
  /** Every store that holds data. */
  stores(): Promise<StoreRef[]>;
  /** The keys of a list store that have items. */
  listKeys(name: string): AsyncIterable<string>;
  /** The services of a pubsub store that have nodes or items. */
  pubsubServices(name: string): AsyncIterable<string>;
  /** The owners of an archive that have entries. */
  archiveOwners(name: string): AsyncIterable<string>;
  /** Every upload record. */
  uploads(): AsyncIterable<UploadRecord>;
}

/**
 * One archived stanza (XEP-0313). `id` is unique within its archive and
 * sorts in time order (made by `newArchiveId()` in archive-id.ts, which also
 * gives `when`), so "after this id" and "from this time" are both ranges of
 * the same ordered index.
 */
export interface ArchiveEntry {
  id: string;
  /** When it was archived, ms since the epoch (the time inside `id`). */
  when: number;
  /** The correspondent: the other party's bare JID (second index). */
  with: string;
  /** The stanza as XML text. */
  xml: string;
}

/** A slice of one archive, in id order (time order), or newest first with `reverse`. */
export interface ArchiveRange {
  /** Only entries with this correspondent (bare JID). */
  with?: string;
  /** Only entries with an id strictly after / before these. */
  afterId?: string;
  beforeId?: string;
  /** Only entries with `when` at or after `start`, at or before `end` (ms). */
  start?: number;
  end?: number;
  reverse?: boolean;
  /** At most this many (a hint: callers may stop reading sooner). */
  limit?: number;
}

/**
 * Append-only archives, one per owner (a user's bare JID, or a room's),
 * indexed by (owner, id) and by (owner, with, id); reads are streamed, so a
 * page never loads a whole archive. Reads see every append whose promise
 * was created before them. In SQL: one table (owner, id, when, with, xml)
 * with primary key (owner, id) and an index on (owner, with, id).
 */
export interface ArchiveStore {
  append(owner: string, entry: ArchiveEntry): Promise<void>;
  query(owner: string, range: ArchiveRange): AsyncIterable<ArchiveEntry>;
  /** The entries with these ids, in the order asked (undefined where missing). */
  get(owner: string, ids: string[]): Promise<Array<ArchiveEntry | undefined>>;
  /** Removes entries archived before `before` (ms) from every archive; returns how many. */
  expire(before: number): Promise<number>;
  /** Removes one owner's whole archive (account deletion). */
  removeOwner(owner: string): Promise<void>;
}

/**
 * Announcing changes of per-user entries that a store keeps in memory, to
 * the other processes sharing the same storage (cluster mode), and
 * following theirs. The server provides it (host/store-changes.ts); the
 * cluster layer carries the notices; in a single process announcing does
 * nothing. A notice names an entry, never its value: a follower re-reads
 * the entry from storage, so concurrent changes end as storage has them.
 */
export interface StoreChanges {
  /** Tells the other processes that `key` of `store` changed. Call once the write is durable; never rejects. */
  changed(store: string, key: string): Promise<void>;
  /** Follows the other processes' changes of `store`. */
  follow(store: string, follower: StoreFollower): void;
}

export interface StoreFollower {
  /** Re-reads one entry from storage (another process changed it). */
  reload(key: string): Promise<void>;
  /** Re-reads every entry (notices may have been missed: joining, a lost connection). */
  reloadAll(): Promise<void>;
}

// The narrow interfaces every feature stores through. A module sees named
// stores of JSON values keyed by string (usually a bare JID); it never sees
// key encodings or the database. A second backend is one new file.

export interface KeyValueStore<T> {
  get(key: string): Promise<T | undefined>;
  set(key: string, value: T): Promise<void>;
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

export interface StorageBackend {
  keyValue<T>(name: string): KeyValueStore<T>;
  list<T>(name: string): ListStore<T>;
  close(): Promise<void>;
}

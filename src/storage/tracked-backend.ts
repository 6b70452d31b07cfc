// Wraps any StorageBackend so every operation registers with the durability
// barrier of the client stanza that caused it (storage/durability.ts). Reads
// count as well as writes: a stanza that reads, then writes in the read's
// continuation, must not look finished in between. Outside a client
// stanza's context (s2s, timers, the CLI) the cost is one context lookup.
//
// The wrapping is generic: whatever kinds of store the backend interface
// gains (key-value, lists, pubsub, archives...), each method that returns a
// promise is tracked and each async iterator's steps are, so a new store
// kind needs nothing here.
import { trackDurable } from './durability.ts';
import type { StorageBackend } from './types.ts';

/** The backend, with every store it hands out tracked. */
export function trackedBackend(inner: StorageBackend): StorageBackend {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        if (isThenable(result)) return trackDurable(result);
        // keyValue(), list(), pubsub(), ...: a store object.
        if (result && typeof result === 'object') return trackedStore(result as object);
        return result;
      };
    },
  });
}

function trackedStore<T extends object>(store: T): T {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        if (isThenable(result)) return trackDurable(result);
        if (result && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
          return trackedIterable(result as AsyncIterable<unknown>);
        }
        return result;
      };
    },
  });
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as PromiseLike<unknown>).then === 'function';
}

function trackedIterable<T>(source: AsyncIterable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: () => trackDurable(it.next()),
        return: it.return ? (v?: unknown) => it.return!(v) : undefined,
      } as AsyncIterator<T>;
    },
  };
}

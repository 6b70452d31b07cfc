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
  return wrap(inner, (result) => (result && typeof result === 'object' ? trackedStore(result as object) : result));
}

function trackedStore<T extends object>(store: T): T {
  return wrap(store, (result) =>
    result && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
      ? trackedIterable(result as AsyncIterable<unknown>)
      : result,
  );
}

/**
 * A proxy whose methods track the promises they return and pass other
 * results through `other`. Each method's wrapper is made once and kept:
 * stores sit on hot paths (an archive append per message), where a new
 * closure per call would be garbage per call.
 */
function wrap<T extends object>(target: T, other: (result: unknown) => unknown): T {
  const wrappers = new Map<PropertyKey, { fn: (...args: unknown[]) => unknown; wrapper: (...args: unknown[]) => unknown }>();
  return new Proxy(target, {
    get(t, prop, receiver) {
      const value = Reflect.get(t, prop, receiver);
      if (typeof value !== 'function') return value;
      const known = wrappers.get(prop);
      if (known && known.fn === value) return known.wrapper;
      const fn = value as (...args: unknown[]) => unknown;
      const wrapper = (...args: unknown[]) => {
        const result = fn.apply(t, args);
        return isThenable(result) ? trackDurable(result) : other(result);
      };
      wrappers.set(prop, { fn, wrapper });
      return wrapper;
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

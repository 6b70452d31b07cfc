// XEP-0049 private XML storage: per user (bare JID), the XML fragments a
// client stored, keyed by their qualified name ("{namespace}name"), kept as
// the text that was sent.
import type { ServerContext } from '../host/context.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { type Element, byteLength, parse } from '../xml/element.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

export class PrivateXmlStore {
  private readonly kv: KeyValueStore<Record<string, string>>;
  private readonly mutex = new KeyedMutex();

  constructor(backend: StorageBackend, _server: ServerContext) {
    this.kv = backend.keyValue('private');
  }

  static key(el: Element): string {
    return `{${el.getNS() ?? ''}}${el.name}`;
  }

  /** The stored fragment with that key, as a fresh element. */
  async get(user: string, key: string): Promise<Element | undefined> {
    const xml = (await this.kv.get(user))?.[key];
    return xml === undefined ? undefined : parse(xml);
  }

  /**
   * Stores fragments (each replacing the one with its key); refused, with
   * nothing stored, when the user's total would pass `maxBytes`.
   */
  set(user: string, fragments: Element[], maxBytes: number): Promise<boolean> {
    return this.mutex.run(user, async () => {
      const all = { ...((await this.kv.get(user)) ?? {}) };
      for (const f of fragments) all[PrivateXmlStore.key(f)] = f.toString();
      const total = Object.values(all).reduce((n, xml) => n + byteLength(xml), 0);
      if (total > maxBytes) return false;
      await this.kv.set(user, all);
      return true;
    });
  }
}

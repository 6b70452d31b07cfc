// vCards (XEP-0054 vcard-temp), one per user keyed by bare JID, stored as
// the XML text the client sent so every byte (a PHOTO's BINVAL included)
// comes back exactly. The MSN gateway reads and writes the same store
// in-process (avatars, nicknames).
import type { ServerContext } from '../host/context.ts';
import { type Element, parse } from '../xml/element.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

export class VcardStore {
  private readonly kv: KeyValueStore<string>;

  constructor(backend: StorageBackend, _server: ServerContext) {
    this.kv = backend.keyValue<string>('vcard');
  }

  /** The user's vCard as a fresh element (safe to modify), if one is stored. */
  async get(bareJid: string): Promise<Element | undefined> {
    const xml = await this.kv.get(bareJid);
    return xml === undefined ? undefined : parse(xml);
  }

  /** Replaces the user's vCard. */
  set(bareJid: string, vcard: Element): Promise<void> {
    return this.kv.set(bareJid, serialize(vcard));
  }

  delete(bareJid: string): Promise<void> {
    return this.kv.delete(bareJid);
  }
}

/** The stored form of a vCard; its byte length is what size limits measure. */
export function serialize(vcard: Element): string {
  return vcard.toString();
}

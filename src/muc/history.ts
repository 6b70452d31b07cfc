// A room's recent messages, replayed to each new occupant (XEP-0045
// §7.2.15). Kept in memory, newest last, at most the room's history length;
// each entry is the message as occupants saw it (from the sender's occupant
// JID) with its XEP-0203 delay already attached. The joining client narrows
// what it gets with <history maxchars maxstanzas seconds since/>; every
// limit it gives applies.
import { clone, type Element, el, parse } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

interface Entry {
  stanza: Element;
  at: number;
  chars: number;
}

export class RoomHistory {
  private entries: Entry[] = [];

  constructor(private length: number) {}

  get size(): number {
    return this.entries.length;
  }

  /** How many messages it keeps. */
  get capacity(): number {
    return this.length;
  }

  /** Changes how many messages are kept (the room's configuration changed). */
  resize(length: number): void {
    this.length = length;
    if (this.entries.length > length) this.entries.splice(0, this.entries.length - length);
  }

  /** Remembers a broadcast message (without `to`), stamping when the room got it. */
  add(message: Element, roomJid: string, at = Date.now()): void {
    if (this.length === 0) return;
    const stanza = el('message', { ...message.attrs, to: undefined });
    for (const c of message.children) stanza.cnode(typeof c === 'string' ? c : clone(c));
    stanza.cnode(el('delay', { xmlns: NS.delay, from: roomJid, stamp: new Date(at).toISOString() }));
    this.entries.push({ stanza, at, chars: stanza.toString().length });
    if (this.entries.length > this.length) this.entries.shift();
  }

  /** The messages a joining occupant asked for, oldest first. */
  select(request: Element | undefined, now = Date.now()): Element[] {
    let picked = this.entries;
    if (!request) return picked.map((e) => e.stanza);
    const maxstanzas = wholeNumber(request.attrs.maxstanzas);
    if (maxstanzas !== undefined) picked = maxstanzas === 0 ? [] : picked.slice(-maxstanzas);
    const seconds = wholeNumber(request.attrs.seconds);
    if (seconds !== undefined) picked = picked.filter((e) => e.at >= now - seconds * 1000);
    if (request.attrs.since !== undefined) {
      const since = Date.parse(request.attrs.since);
      // An unreadable date asks for nothing we can honour: send nothing rather than everything.
      picked = Number.isNaN(since) ? [] : picked.filter((e) => e.at > since);
    }
    const maxchars = wholeNumber(request.attrs.maxchars);
    if (maxchars !== undefined) {
      let budget = maxchars;
      let from = picked.length;
      while (from > 0 && picked[from - 1]!.chars <= budget) {
        budget -= picked[from - 1]!.chars;
        from--;
      }
      picked = picked.slice(from);
    }
    return picked.map((e) => e.stanza);
  }

  /** Forgets everything (the room was destroyed). */
  clear(): void {
    this.entries = [];
  }

  /** Serialised stanzas, for keeping a persistent room's history across a restart. */
  serialise(): string[] {
    return this.entries.map((e) => e.stanza.toString());
  }

  restore(stanzas: string[]): void {
    for (const xml of stanzas.slice(-this.length)) {
      try {
        const stanza = parse(xml);
        const stamp = Date.parse(stanza.getChild('delay', NS.delay)?.attrs.stamp ?? '');
        this.entries.push({ stanza, at: Number.isNaN(stamp) ? Date.now() : stamp, chars: xml.length });
      } catch {
        // A damaged entry is skipped; the rest of the history is still worth having.
      }
    }
  }
}

function wholeNumber(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

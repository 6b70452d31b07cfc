// XEP-0359 stanza ids. An entity that stamps <stanza-id by='X'/> must first
// remove any that claim to be by X (§5: a sender could forge them), so ids
// with by=X are trustworthy for X's clients; <origin-id/> is the client's
// and is kept as it came.
import { type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

/** Removes <stanza-id/> elements claiming to be by `by`; true if there were any. */
export function stripStanzaIds(stanza: Element, by: string): boolean {
  const children = stanza.children;
  let removed = false;
  for (let i = children.length - 1; i >= 0; i--) {
    const c = children[i]!;
    if (typeof c !== 'string' && c.name === 'stanza-id' && c.attrs.xmlns === NS.sid && c.attrs.by === by) {
      children.splice(i, 1);
      removed = true;
    }
  }
  return removed;
}

export function addStanzaId(stanza: Element, by: string, id: string): void {
  stanza.cnode(el('stanza-id', { xmlns: NS.sid, by, id }));
}

/** The id stamped by `by`, if any. */
export function stanzaIdBy(stanza: Element, by: string): string | undefined {
  for (const c of stanza.children) {
    if (typeof c !== 'string' && c.name === 'stanza-id' && c.attrs.xmlns === NS.sid && c.attrs.by === by) return c.attrs.id;
  }
  return undefined;
}

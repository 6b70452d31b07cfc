// The one XML element type shared by every layer (ltx's), plus small helpers
// that keep stanza code readable.
import { Element, clone, escapeXML, escapeXMLText, parse } from 'ltx';

export { Element, clone, escapeXML, escapeXMLText, parse };

type Attrs = Record<string, string | number | undefined | null>;

/**
 * Builds an element: el('iq', {type: 'result'}, el('query', {xmlns: NS})).
 * Attributes go straight into the new element (ltx's createElement copies
 * them twice and deletes keys): stanzas are built on every hot path.
 */
export function el(name: string, attrs?: Attrs | null, ...children: Array<Element | string | null | undefined | false>): Element {
  const e = new Element(name);
  if (attrs) {
    const own = e.attrs as Record<string, string>;
    for (const k in attrs) {
      const v = attrs[k];
      if (v !== undefined && v !== null) own[k] = typeof v === 'string' ? v : String(v);
    }
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.cnode(c);
  return e;
}

/** The first element child, whatever its name (e.g. an iq's payload). */
export function firstChild(parent: Element): Element | undefined {
  for (const c of parent.children) if (typeof c !== 'string') return c;
  return undefined;
}

/** UTF-8 byte length of a string without allocating a Buffer. */
export function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

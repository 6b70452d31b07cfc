// The one XML element type shared by every layer (ltx's), plus small helpers
// that keep stanza code readable.
import { Element, clone, createElement, escapeXML, escapeXMLText, parse } from 'ltx';

export { Element, clone, escapeXML, escapeXMLText, parse };

type Attrs = Record<string, string | number | undefined | null>;

/** Builds an element: el('iq', {type: 'result'}, el('query', {xmlns: NS})). */
export function el(name: string, attrs?: Attrs | null, ...children: Array<Element | string | null | undefined | false>): Element {
  const clean: Attrs = {};
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) clean[k] = v;
  const e = createElement(name, clean);
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

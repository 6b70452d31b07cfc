// Serialising stanzas: the text every delivery writes, and the archive
// keeps. ltx's toString() sends each piece through a callback and runs a
// regular-expression replace over every attribute value and text node,
// even when (as nearly always) there is nothing to escape; here a value is
// copied as it is unless a test finds a character to escape. The output is
// the same as ltx's: attributes in double quotes, empty elements
// self-closed. Subclasses with their own serialisation (xml/fanout.ts) are
// asked for theirs.
import { Element, escapeXML, escapeXMLText } from 'ltx';

const ATTR_SPECIAL = /["&'<>]/;
const TEXT_SPECIAL = /[&<>]/;

/** The element as XML text (same output as `element.toString()`). */
export function xmlString(e: Element): string {
  if (Object.getPrototypeOf(e) !== Element.prototype) return e.toString();
  let s = `<${e.name}`;
  const attrs = e.attrs;
  for (const k in attrs) {
    const v = attrs[k];
    if (v === undefined || v === null) continue;
    const t = typeof v === 'string' ? v : String(v);
    s += ` ${k}="${ATTR_SPECIAL.test(t) ? escapeXML(t) : t}"`;
  }
  const children = e.children;
  if (children.length === 0) return `${s}/>`;
  s += '>';
  for (const c of children) {
    if (typeof c === 'string') s += TEXT_SPECIAL.test(c) ? escapeXMLText(c) : c;
    else if (c instanceof Element) s += xmlString(c);
    else if (c !== null && c !== undefined) s += escapeXMLText(String(c));
  }
  return `${s}</${e.name}>`;
}

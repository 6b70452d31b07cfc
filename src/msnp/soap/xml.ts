/**
 * Reading and writing the SOAP documents of the MSN web services. Services
 * mix namespace prefixes freely (soap:, S:, wst:, none), so lookups go by
 * local name. Everything written is escaped here.
 */
import { type Element, escapeXML, parse } from 'ltx';
import { MsnProtocolError } from '../errors.ts';

export type { Element };

/** Parses a service reply; a document that is not XML is a protocol error. */
export function parseXml(text: string, what: string): Element {
  // ltx reads a DOCTYPE as the rest of the document: services never send one.
  if (/<!DOCTYPE/i.test(text)) throw new MsnProtocolError(`${what}: unexpected DOCTYPE`);
  try {
    return parse(text);
  } catch (err) {
    throw new MsnProtocolError(`${what}: not XML (${(err as Error).message})`);
  }
}

export function localName(el: Element): string {
  const i = el.name.indexOf(':');
  return i < 0 ? el.name : el.name.slice(i + 1);
}

/** Every descendant (depth first) with this local name. */
export function findAll(root: Element, name: string, out: Element[] = []): Element[] {
  for (const c of root.children) {
    if (typeof c === 'string') continue;
    if (localName(c) === name) out.push(c);
    findAll(c, name, out);
  }
  return out;
}

export function find(root: Element, name: string): Element | undefined {
  for (const c of root.children) {
    if (typeof c === 'string') continue;
    if (localName(c) === name) return c;
    const deep = find(c, name);
    if (deep) return deep;
  }
  return undefined;
}

/** The direct child with this local name. */
export function child(parent: Element, name: string): Element | undefined {
  for (const c of parent.children) if (typeof c !== 'string' && localName(c) === name) return c;
  return undefined;
}

export function childText(parent: Element, name: string): string | undefined {
  return child(parent, name)?.getText();
}

/** The text of the first descendant with this local name. */
export function text(root: Element, name: string): string | undefined {
  return find(root, name)?.getText();
}

/** Escapes text and attribute values. */
export function esc(s: string): string {
  return escapeXML(s);
}

/** A SOAP fault's code (local part, e.g. "AuthenticationFailed") and text, when the body is one. */
export function soapFault(root: Element): { code: string; text: string; detail?: Element } | undefined {
  const fault = find(root, 'Fault');
  if (!fault) return undefined;
  const code = (childText(fault, 'faultcode') ?? '').replace(/^.*:/, '');
  return { code, text: childText(fault, 'faultstring') ?? '', detail: child(fault, 'detail') };
}

export const SOAP_ENVELOPE_OPEN =
  '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/">';

export function envelope(header: string, body: string): string {
  return `${SOAP_ENVELOPE_OPEN}<soap:Header>${header}</soap:Header><soap:Body>${body}</soap:Body></soap:Envelope>`;
}

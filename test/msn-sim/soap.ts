// Small SOAP helpers for the simulator's web services: reading requests by
// local element name (clients mix prefixes), and writing replies and faults.

import { type Element, escapeXML, parse } from 'ltx';

export type { Element };

export function parseXml(text: string): Element | null {
  if (/<!DOCTYPE/i.test(text)) return null;
  try {
    return parse(text);
  } catch {
    return null;
  }
}

function local(el: Element): string {
  const i = el.name.indexOf(':');
  return i < 0 ? el.name : el.name.slice(i + 1);
}

export function findAll(root: Element, name: string, out: Element[] = []): Element[] {
  for (const c of root.children) {
    if (typeof c === 'string') continue;
    if (local(c) === name) out.push(c);
    findAll(c, name, out);
  }
  return out;
}

export function find(root: Element, name: string): Element | undefined {
  return findAll(root, name)[0];
}

export function text(root: Element, name: string): string | undefined {
  return find(root, name)?.getText();
}

/** The first element of the SOAP Body (the action). */
export function action(root: Element): Element | undefined {
  const body = find(root, 'Body');
  return body?.children.find((c): c is Element => typeof c !== 'string');
}

export function localName(el: Element): string {
  return local(el);
}

export const esc = escapeXML;

export function envelope(body: string, header = ''): string {
  return (
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" ' +
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">' +
    `${header ? `<soap:Header>${header}</soap:Header>` : ''}<soap:Body>${body}</soap:Body></soap:Envelope>`
  );
}

export function fault(code: string, message: string, detail = '', codeNs?: string): string {
  const faultcode = codeNs ? `<faultcode xmlns:q0="${codeNs}">q0:${code}</faultcode>` : `<faultcode>soap:${code}</faultcode>`;
  return envelope(`<soap:Fault>${faultcode}<faultstring>${esc(message)}</faultstring><detail>${detail}</detail></soap:Fault>`);
}

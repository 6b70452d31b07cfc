// XEP-0156 connection discovery: /.well-known/host-meta (XRD) and
// host-meta.json list our WebSocket endpoints, so clients that only know the
// domain (Converse, Gajim, ...) find them. The host name comes from the
// request, so the URLs work however the client reached us; a Host header
// that is not a plain host name falls back to the configured domain.
import { escapeXML } from '../xml/element.ts';
import type { OwnPorts } from './origin-policy.ts';

export const WEBSOCKET_PATH = '/xmpp-websocket';
const WEBSOCKET_REL = 'urn:xmpp:alt-connections:websocket';

/** The request's host name without its port ("[::1]" kept bracketed), or the fallback. */
export function requestHostname(hostHeader: string | undefined, fallback: string): string {
  if (!hostHeader || !/^[A-Za-z0-9.:[\]-]+$/.test(hostHeader)) return fallback;
  try {
    return new URL(`http://${hostHeader}`).hostname || fallback;
  } catch {
    return fallback;
  }
}

export interface UrlOptions {
  /** Whether a plain ws:// login is allowed (c2s.requireTls is off). */
  plain: boolean;
  /** The client came through a trusted reverse proxy: its scheme, on the proxy's own port. */
  proxied?: { secure: boolean } | null;
}

/**
 * wss:// first: XEP-0156 clients take the first usable link, and TLS is
 * preferred. ws:// only when a client could log in over it. Behind a
 * trusted proxy, the one URL the client reached the proxy by.
 */
export function websocketUrls(hostname: string, ports: OwnPorts, o: UrlOptions): string[] {
  if (o.proxied) {
    return o.proxied.secure || o.plain ? [new URL(`${o.proxied.secure ? 'wss' : 'ws'}://${hostname}${WEBSOCKET_PATH}`).href] : [];
  }
  const urls: string[] = [];
  if (ports.https !== null) urls.push(new URL(`wss://${hostname}:${ports.https}${WEBSOCKET_PATH}`).href);
  if (ports.http !== null && o.plain) urls.push(new URL(`ws://${hostname}:${ports.http}${WEBSOCKET_PATH}`).href);
  return urls;
}

export function hostMetaXml(urls: string[]): string {
  const links = urls.map((u) => `  <Link rel='${WEBSOCKET_REL}' href='${escapeXML(u)}'/>\n`).join('');
  return `<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n${links}</XRD>\n`;
}

export function hostMetaJson(urls: string[]): string {
  return `${JSON.stringify({ links: urls.map((href) => ({ rel: WEBSOCKET_REL, href })) }, null, 2)}\n`;
}

// TLS channel bindings (RFC 5056) for SCRAM-*-PLUS and the HT-* FAST
// mechanisms: what ties an authentication to this very TLS connection, so
// a man in the middle who terminates TLS with another certificate (or
// another session) cannot relay it.
//   tls-exporter (RFC 9266): 32 bytes from the TLS exporter with the label
//     "EXPORTER-Channel-Binding" and no context. Defined for TLS 1.3 only
//     (TLS 1.2 would need the extended master secret, which Node cannot
//     confirm), so it is offered on TLS 1.3 connections.
//   tls-server-end-point (RFC 5929 §4): a hash of the server certificate
//     of this connection, with the hash of its signature algorithm (SHA-256
//     when that is MD5, SHA-1 or not a plain hash). Any TLS version.
// tls-unique is not offered: it is undefined for TLS 1.3 (RFC 9266).
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

export type ChannelBindingType = 'tls-exporter' | 'tls-server-end-point';

/** What a stream offers: the binding types it supports and their data. */
export interface ChannelBinding {
  /** Types available on this connection, strongest first. */
  types(): ChannelBindingType[];
  /** The binding data for `type`, or null when it is not available here. */
  data(type: string): Buffer | null;
}

/** No channel binding (plain TCP, a WebSocket behind a proxy, a component link). */
export const NO_CHANNEL_BINDING: ChannelBinding = { types: () => [], data: () => null };

/** The XEP-0440 stream feature listing the binding types, or null when there are none. */
export function channelBindingFeature(binding: ChannelBinding): Element | null {
  const types = binding.types();
  if (types.length === 0) return null;
  return el('sasl-channel-binding', { xmlns: NS.saslCb }, ...types.map((type) => el('channel-binding', { type })));
}

/** Channel bindings of a TLS socket on the server side. */
export function tlsChannelBinding(socket: TLSSocket): ChannelBinding {
  let endPoint: Buffer | null | undefined;
  const exporterAvailable = () => socket.getProtocol?.() === 'TLSv1.3';
  const serverEndPoint = (): Buffer | null => {
    if (endPoint === undefined) {
      const cert = socket.getCertificate() as { raw?: Buffer } | null;
      endPoint = cert?.raw ? createHash(endPointHash(cert.raw)).update(cert.raw).digest() : null;
    }
    return endPoint;
  };
  return {
    types() {
      const out: ChannelBindingType[] = [];
      if (exporterAvailable()) out.push('tls-exporter');
      if (serverEndPoint()) out.push('tls-server-end-point');
      return out;
    },
    data(type) {
      if (type === 'tls-exporter') {
        // RFC 9266 §2: no context (for TLS 1.3 the same as an empty one).
        return exporterAvailable() ? socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)) : null;
      }
      if (type === 'tls-server-end-point') return serverEndPoint();
      return null;
    },
  };
}

// Signature algorithm OIDs whose hash RFC 5929 §4.1 uses as is (others: SHA-256).
const SIGNATURE_HASHES: Record<string, string> = {
  '1.2.840.113549.1.1.12': 'sha384', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13': 'sha512', // sha512WithRSAEncryption
  '1.2.840.10045.4.3.3': 'sha384', // ecdsa-with-SHA384
  '1.2.840.10045.4.3.4': 'sha512', // ecdsa-with-SHA512
};

/**
 * The hash for tls-server-end-point of a DER certificate: the hash of its
 * signatureAlgorithm, with MD5 and SHA-1 (and algorithms without a single
 * hash, such as Ed25519 or RSASSA-PSS) mapped to SHA-256, as RFC 5929 and
 * the implementations in use do.
 */
export function endPointHash(der: Buffer): string {
  try {
    return SIGNATURE_HASHES[signatureAlgorithmOid(der)] ?? 'sha256';
  } catch {
    return 'sha256';
  }
}

/**
 * The OID of a certificate's outer signatureAlgorithm: Certificate ::=
 * SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, ... }, ... }.
 * Node's X509Certificate does not expose it, and this is one field.
 */
export function signatureAlgorithmOid(der: Buffer): string {
  const cert = readTlv(der, 0);
  if (cert.tag !== 0x30) throw new Error('not a certificate');
  const tbs = readTlv(der, cert.start);
  const algorithm = readTlv(der, tbs.end);
  if (algorithm.tag !== 0x30) throw new Error('no signature algorithm');
  const oid = readTlv(der, algorithm.start);
  if (oid.tag !== 0x06) throw new Error('no algorithm identifier');
  return decodeOid(der.subarray(oid.start, oid.end));
}

function readTlv(buf: Buffer, at: number): { tag: number; start: number; end: number } {
  const tag = buf[at];
  let len = buf[at + 1];
  if (tag === undefined || len === undefined) throw new Error('truncated DER');
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] ?? 0);
    start += n;
  }
  const end = start + len;
  if (end > buf.length) throw new Error('truncated DER');
  return { tag, start, end };
}

function decodeOid(bytes: Buffer): string {
  const parts: number[] = [];
  let value = 0;
  for (const b of bytes) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join('.');
}

// Reads the ALPN protocols a TLS ClientHello offers, before the handshake,
// so the https listener can hand ACME's TLS-ALPN-01 validation (which asks
// for "acme-tls/1") to the challenge certificate and every other client to
// the normal one. Only the first record is read (RFC 8446 §4.1.2 framing).

/** null: more bytes needed; [] when none offered or not a ClientHello. */
export function offeredAlpn(buf: Buffer): string[] | null {
  if (buf.length < 5) return null;
  if (buf[0] !== 22) return []; // not a handshake record
  const recordLength = buf.readUInt16BE(3);
  if (buf.length < 5 + recordLength) return null;
  const hs = buf.subarray(5, 5 + recordLength);
  if (hs.length < 4 || hs[0] !== 1) return []; // not a ClientHello
  let p = 4 + 2 + 32; // handshake header, client_version, random
  const skip = (lenBytes: 1 | 2): boolean => {
    if (p + lenBytes > hs.length) return false;
    const n = lenBytes === 1 ? hs[p]! : hs.readUInt16BE(p);
    p += lenBytes + n;
    return p <= hs.length;
  };
  // session_id, cipher_suites, compression_methods
  if (!skip(1) || !skip(2) || !skip(1)) return [];
  if (p + 2 > hs.length) return [];
  const end = Math.min(hs.length, p + 2 + hs.readUInt16BE(p));
  p += 2;
  while (p + 4 <= end) {
    const type = hs.readUInt16BE(p);
    const len = hs.readUInt16BE(p + 2);
    const data = hs.subarray(p + 4, p + 4 + len);
    p += 4 + len;
    if (type !== 16 || data.length < 2) continue; // 16: application_layer_protocol_negotiation
    const names: string[] = [];
    let q = 2;
    while (q < data.length) {
      const n = data[q]!;
      names.push(data.subarray(q + 1, q + 1 + n).toString('latin1'));
      q += 1 + n;
    }
    return names;
  }
  return [];
}

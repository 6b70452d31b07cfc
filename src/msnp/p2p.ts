/**
 * P2P (MSNC1) binary framing carried in application/x-msnmsgrp2p MSGs:
 * a 48-byte little-endian header, the data, and a 4-byte big-endian footer
 * naming the application (0 = MSNSLP signalling, 1 = display picture data).
 */

export const P2P_HEADER_SIZE = 48;
/** Largest data chunk per P2P packet; keeps the whole MSG under 1664 bytes. */
export const P2P_MAX_CHUNK = 1202;

export const P2P_FLAGS = {
  NONE: 0x00,
  ACK: 0x02,
  WAIT: 0x04,
  ERROR: 0x08,
  /** Data of a display picture / emoticon transfer. */
  DATA: 0x20,
  BYE_ACK: 0x40,
  CANCEL: 0x80,
} as const;

export const P2P_APP_SLP = 0;
export const P2P_APP_DISPLAY_PICTURE = 1;

export interface P2PHeader {
  sessionId: number;
  identifier: number;
  /** Offset of this chunk's data within the whole message. */
  offset: number;
  /** Size of the whole message the chunk belongs to. */
  totalSize: number;
  /** Bytes of data in this chunk. */
  length: number;
  flags: number;
  ackIdentifier: number;
  ackUniqueId: number;
  ackDataSize: number;
}

export interface P2PPacket {
  header: P2PHeader;
  data: Buffer;
  /** Application id from the footer. */
  footer: number;
}

export function emptyHeader(): P2PHeader {
  return {
    sessionId: 0,
    identifier: 0,
    offset: 0,
    totalSize: 0,
    length: 0,
    flags: 0,
    ackIdentifier: 0,
    ackUniqueId: 0,
    ackDataSize: 0,
  };
}

export function encodeP2PHeader(h: P2PHeader): Buffer {
  const b = Buffer.alloc(P2P_HEADER_SIZE);
  b.writeUInt32LE(h.sessionId >>> 0, 0);
  b.writeUInt32LE(h.identifier >>> 0, 4);
  b.writeBigUInt64LE(BigInt(h.offset), 8);
  b.writeBigUInt64LE(BigInt(h.totalSize), 16);
  b.writeUInt32LE(h.length >>> 0, 24);
  b.writeUInt32LE(h.flags >>> 0, 28);
  b.writeUInt32LE(h.ackIdentifier >>> 0, 32);
  b.writeUInt32LE(h.ackUniqueId >>> 0, 36);
  b.writeBigUInt64LE(BigInt(h.ackDataSize), 40);
  return b;
}

export function decodeP2PHeader(b: Buffer): P2PHeader {
  if (b.length < P2P_HEADER_SIZE) throw new Error('P2P header too short');
  return {
    sessionId: b.readUInt32LE(0),
    identifier: b.readUInt32LE(4),
    offset: Number(b.readBigUInt64LE(8)),
    totalSize: Number(b.readBigUInt64LE(16)),
    length: b.readUInt32LE(24),
    flags: b.readUInt32LE(28),
    ackIdentifier: b.readUInt32LE(32),
    ackUniqueId: b.readUInt32LE(36),
    ackDataSize: Number(b.readBigUInt64LE(40)),
  };
}

export function encodeP2PPacket(p: P2PPacket): Buffer {
  const footer = Buffer.alloc(4);
  footer.writeUInt32BE(p.footer >>> 0, 0);
  return Buffer.concat([encodeP2PHeader({ ...p.header, length: p.data.length }), p.data, footer]);
}

/** Decodes header + data + footer; the footer is optional since acks are sometimes sent without one. */
export function decodeP2PPacket(body: Buffer): P2PPacket {
  const header = decodeP2PHeader(body);
  const end = P2P_HEADER_SIZE + header.length;
  if (body.length < end) throw new Error('P2P packet shorter than its header says');
  const data = Buffer.from(body.subarray(P2P_HEADER_SIZE, end));
  const footer = body.length >= end + 4 ? body.readUInt32BE(end) : 0;
  return { header, data, footer };
}

/** The acknowledgement for a fully received message, as the docs lay it out. */
export function buildAckHeader(received: P2PHeader, identifier: number): P2PHeader {
  return {
    sessionId: received.sessionId,
    identifier,
    offset: 0,
    totalSize: received.totalSize,
    length: 0,
    flags: P2P_FLAGS.ACK,
    ackIdentifier: received.identifier,
    ackUniqueId: received.ackIdentifier,
    ackDataSize: received.totalSize,
  };
}

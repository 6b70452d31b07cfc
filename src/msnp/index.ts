/**
 * MSN Messenger (MSNP8-11) client library. The XMPP gateway should use only
 * MsnSession and the types/errors exported here; the protocol helpers are
 * exported for tests and tools.
 */

export { md5Challenge, msnp11Challenge, solveChallenge } from './challenge.ts';
export { CommandParser, encodeCommand, type MsnCommand } from './command.ts';
export {
  MSN_ERROR_NAMES,
  MsnAuthError,
  MsnConnectionError,
  MsnError,
  MsnProtocolError,
  MsnTimeoutError,
} from './errors.ts';
export type { TextFormat } from './messages.ts';
export { DEFAULT_FORMAT, MAX_MSG_PAYLOAD, splitText } from './messages.ts';
export type { MsnObject } from './msnobject.ts';
export { createMsnObject, parseMsnObject, serializeMsnObject, verifyData } from './msnobject.ts';
export { DEFAULT_CLIENT_ID, MsnSession, SUPPORTED_PROTOCOLS } from './session.ts';
export type { FileOffer } from './file-transfer.ts';
export type { MsnTrace, MsnTraceEvent } from './trace.ts';
export * from './types.ts';

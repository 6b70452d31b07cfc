/**
 * MSN Messenger (MSNP8-11) client library. The XMPP gateway should use only
 * MsnSession and the types/errors exported here; the protocol helpers are
 * exported for tests and tools.
 */
export { MsnSession, DEFAULT_CLIENT_ID, SUPPORTED_PROTOCOLS } from './session.ts';
export * from './types.ts';
export {
  MsnError,
  MsnAuthError,
  MsnTimeoutError,
  MsnConnectionError,
  MsnProtocolError,
  MSN_ERROR_NAMES,
} from './errors.ts';
export type { TextFormat } from './messages.ts';
export { DEFAULT_FORMAT, MAX_MSG_PAYLOAD, splitText } from './messages.ts';
export type { MsnObject } from './msnobject.ts';
export { createMsnObject, parseMsnObject, serializeMsnObject, verifyData } from './msnobject.ts';
export { msnp11Challenge, md5Challenge, solveChallenge } from './challenge.ts';
export { CommandParser, encodeCommand, type MsnCommand } from './command.ts';

/**
 * Typed errors raised by the MSN client library.
 *
 * Callers (the XMPP gateway in particular) need to tell apart "the server
 * refused this" (MsnError with the 3-digit code), "the password is wrong"
 * (MsnAuthError: never retry), "nothing answered in time" (MsnTimeoutError)
 * and "the connection is gone" (MsnConnectionError), so each gets a class.
 */

/** Human-readable names for the numeric error replies documented for MSNP8-11. */
export const MSN_ERROR_NAMES: Readonly<Record<number, string>> = {
  200: 'Invalid syntax',
  201: 'Invalid parameter',
  205: 'Invalid principal',
  206: 'Domain name missing',
  207: 'Already logged in',
  208: 'Invalid principal',
  209: 'Nickname change illegal',
  210: 'Principal list full',
  215: 'Principal already on list',
  216: 'Principal not on list',
  217: 'Principal not online',
  218: 'Already in mode',
  219: 'Principal is in the opposite list',
  223: 'Too many groups',
  224: 'Invalid group',
  225: 'Principal not in group',
  227: 'Group is not empty',
  228: 'Group with same name already exists',
  229: 'Group name too long',
  230: 'Cannot remove group zero',
  231: 'Invalid group',
  240: 'Empty domain',
  280: 'Switchboard failed',
  281: 'Transfer to switchboard failed',
  282: 'P2P error',
  300: 'Required field missing',
  302: 'Not logged in',
  402: 'Error accessing contact list',
  403: 'Error accessing contact list',
  420: 'Invalid account permissions',
  500: 'Internal server error',
  501: 'Database server error',
  502: 'Command disabled',
  510: 'File operation failed',
  511: 'Banned',
  520: 'Memory allocation failed',
  540: 'Challenge response failed',
  600: 'Server is busy',
  601: 'Server is unavailable',
  602: 'Peer notification server down',
  603: 'Database connection failed',
  604: 'Server is going down',
  605: 'Server unavailable',
  707: 'Could not create connection',
  710: 'Bad CVR parameters',
  711: 'Write is blocking',
  712: 'Session is overloaded',
  713: 'Calling too rapidly',
  714: 'Too many sessions',
  715: 'Not expected',
  717: 'Bad friend file',
  731: 'Not expected',
  800: 'Changing too rapidly',
  910: 'Server too busy',
  911: 'Authentication failed',
  912: 'Server too busy',
  913: 'Not allowed when offline',
  914: 'Server unavailable',
  915: 'Server unavailable',
  916: 'Server unavailable',
  917: 'Authentication failed',
  918: 'Server too busy',
  919: 'Server too busy',
  920: 'Not accepting new principals',
  921: 'Server too busy',
  922: 'Server too busy',
  923: 'Kids Passport without parental consent',
  924: 'Passport account not yet verified',
  928: 'Bad ticket',
};

/** A numeric error reply from an MSN server, or a protocol-level refusal (code 0). */
export class MsnError extends Error {
  /** The 3-digit MSNP error code; 0 when the failure has no server code (e.g. NAK). */
  readonly code: number;
  /** The command whose transaction failed, when known (e.g. "CAL", "ADC"). */
  readonly command?: string;

  constructor(code: number, message?: string, command?: string) {
    super(message ?? `MSN error ${code}${MSN_ERROR_NAMES[code] ? `: ${MSN_ERROR_NAMES[code]}` : ''}`);
    this.name = 'MsnError';
    this.code = code;
    this.command = command;
  }
}

/**
 * Login was refused because of the credentials (911, Passport da-status=failed
 * or HTTP 401). Reconnecting with the same password is pointless, so the
 * session never retries after this.
 */
export class MsnAuthError extends MsnError {
  constructor(message = 'Authentication failed', code = 911) {
    super(code, message, 'USR');
    this.name = 'MsnAuthError';
  }
}

/** Something did not answer within its time limit. */
export class MsnTimeoutError extends MsnError {
  constructor(what: string) {
    super(0, `Timed out: ${what}`);
    this.name = 'MsnTimeoutError';
  }
}

/** The TCP connection failed or closed while a request was outstanding, or the session is offline. */
export class MsnConnectionError extends MsnError {
  constructor(message: string) {
    super(0, message);
    this.name = 'MsnConnectionError';
  }
}

/** The peer or server sent something that breaks the protocol (bad P2P data, SHA1D mismatch, ...). */
export class MsnProtocolError extends MsnError {
  constructor(message: string) {
    super(0, message);
    this.name = 'MsnProtocolError';
  }
}

/** True when a command name is a numeric error reply ("217", "911", ...). */
export function isErrorCode(name: string): boolean {
  return /^\d{3}$/.test(name);
}

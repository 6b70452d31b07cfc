/**
 * Tracing: every command line in and out of a connection, for debugging,
 * with the secrets taken out. Passport tickets, SSO tokens and challenge
 * responses, and switchboard cookies (which let anyone holding one join the
 * conversation as us) never leave the library; payloads are not traced, only
 * the line with its byte count.
 */

export type TraceServer = 'NS' | 'SB' | 'HTTP';

export interface MsnTraceEvent {
  /** 'in' from the server, 'out' to it. */
  direction: 'in' | 'out';
  server: TraceServer;
  /** The command line as sent or received, secrets replaced by "[redacted]". */
  line: string;
}

export type MsnTrace = (event: MsnTraceEvent) => void;

const HIDDEN = '[redacted]';

/** The line to trace for a command, with its secret arguments replaced. */
export function redactedLine(name: string, args: readonly (string | number)[], payloadBytes?: number): string {
  const a = args.map(String);
  switch (name) {
    case 'USR':
      // NS: USR trid TWN S <ticket> | USR trid SSO S <token> <response> [machine-guid]
      //     (the server's "USR trid TWN S <challenge>" and "SSO S <policy> <nonce>" hold nothing secret,
      //     but telling them from the client's by shape alone is fragile: hide everything after S).
      if ((a[1] === 'TWN' || a[1] === 'SSO') && a[2] === 'S') hideFrom(a, 3);
      // SB: USR trid email cookie
      else if (a.length === 3 && a[1]?.includes('@')) hideFrom(a, 2);
      break;
    case 'ANS':
      // ANS trid email cookie session-id
      if (a[2] !== undefined) a[2] = HIDDEN;
      break;
    case 'XFR':
      // XFR trid SB host:port CKI cookie ...
      if (a[3] === 'CKI' && a[4] !== undefined) a[4] = HIDDEN;
      break;
    case 'RNG':
      // RNG session-id host:port CKI cookie inviter nick ...
      if (a[2] === 'CKI' && a[3] !== undefined) a[3] = HIDDEN;
      break;
    default:
      break;
  }
  const tokens = [name, ...a];
  if (payloadBytes !== undefined) tokens.push(String(payloadBytes));
  return tokens.join(' ');
}

function hideFrom(a: string[], index: number): void {
  if (a.length <= index) return;
  a.splice(index, a.length - index, HIDDEN);
}

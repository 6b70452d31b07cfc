/**
 * The state one MSN login shares between its parts (login, contact lists,
 * presence, switchboards, services). MsnSession owns one SessionCore and
 * hands it to each part, so every part reads the same contact map, the same
 * notification-server connection and the same negotiated version, and emits
 * through the session's own event emitter.
 */
import { randomUUID } from 'node:crypto';
import type { MsnConnection } from './connection.ts';
import { MsnConnectionError, MsnProtocolError, MsnTimeoutError } from './errors.ts';
import type { FileOffer } from './file-transfer.ts';
import type { SecurityToken } from './soap/rst.ts';
import type {
  MsnContact,
  MsnGroup,
  MsnSessionEvents,
  MsnSessionOptions,
  MsnSessionState,
  MsnTimeouts,
} from './types.ts';

export type Emit = <K extends keyof MsnSessionEvents>(name: K, ...args: MsnSessionEvents[K]) => void;

export class SessionCore {
  /** The notification-server connection while logged in. */
  ns: MsnConnection | undefined;
  /** The negotiated protocol ("MSNP11"), empty before the first login. */
  negotiated = '';
  private current: MsnSessionState = 'offline';
  /** True from login() until logout() or a fatal disconnect: drives reconnects. */
  wantOnline = false;
  readonly contacts = new Map<string, MsnContact>();
  readonly groups = new Map<string, MsnGroup>();
  /** Tickets from the security token service (MSNP13+), by service domain; renewed at every login. */
  tokens = new Map<string, SecurityToken>();
  /** This endpoint's machine GUID (MSNP16+ MPOP), braces included. */
  readonly machineGuid: string;
  /** Base URL of the SOAP services (token service, address book, offline messages). */
  readonly servicesUrl: string;

  constructor(
    readonly email: string,
    readonly opts: MsnSessionOptions,
    readonly timeouts: MsnTimeouts,
    readonly emit: Emit,
    /** True when someone listens for 'error' (an unheard 'error' would throw). */
    private readonly hasErrorListener: () => boolean,
    private readonly hasFileOfferListener: () => boolean = () => false,
  ) {
    const guid = opts.machineGuid ?? randomUUID();
    this.machineGuid = `{${guid.replace(/[{}]/g, '').toLowerCase()}}`;
    this.servicesUrl = (opts.servicesUrl || new URL(opts.nexusUrl).origin).replace(/\/+$/, '');
  }

  /** A ticket from the token service; MsnProtocolError when the login did not get one. */
  ticket(domain: string): string {
    const t = this.tokens.get(domain)?.token;
    if (!t) throw new MsnProtocolError(`no ${domain} ticket (MSNP13+ logins only)`);
    return t;
  }

  get state(): MsnSessionState {
    return this.current;
  }

  /** Moves to `next` and tells listeners; a failure is reported even when the state stays the same. */
  setState(next: MsnSessionState, reason?: string, error?: Error): void {
    const previous = this.current;
    if (previous === next && !error) return;
    this.current = next;
    this.emit('state', { state: next, previous, reason, error });
  }

  /** The negotiated version as a number (11 for MSNP11), 0 before login. */
  get version(): number {
    return versionNumber(this.negotiated);
  }

  requireOnline(): MsnConnection {
    if (this.state !== 'online' || !this.ns) throw new MsnConnectionError('not connected to MSN');
    return this.ns;
  }

  /** Hands a file offer to the listeners; false when there are none (the offer is then declined). */
  emitFileOffer(offer: FileOffer): boolean {
    if (!this.hasFileOfferListener()) return false;
    this.emit('fileOffer', offer);
    return true;
  }

  emitError(err: Error): void {
    if (this.hasErrorListener()) this.emit('error', err);
  }

  ensureContact(email: string): MsnContact {
    const key = email.toLowerCase();
    let c = this.contacts.get(key);
    if (!c) {
      c = {
        email: key,
        nickname: key,
        lists: [],
        groups: [],
        status: 'FLN',
        personalMessage: '',
        currentMedia: '',
        clientId: 0,
      };
      this.contacts.set(key, c);
    }
    return c;
  }
}

export function versionNumber(protocol: string): number {
  return Number(protocol.replace(/^MSNP/i, '')) || 0;
}

/** MSN URL-decodes names; a malformed escape keeps the raw text. */
export function decodeText(s: string | undefined, fallback = ''): string {
  if (s === undefined) return fallback;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** MSN URL-encodes names on the wire; spaces must be %20, never '+'. */
export function encodeText(s: string): string {
  return encodeURIComponent(s);
}

export function withDeadline<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MsnTimeoutError(what)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

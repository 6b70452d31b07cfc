// JIDs (RFC 7622): parsing, normalisation and comparison. Parsed JIDs are
// always normalised, so two JIDs are equal exactly when their strings are.
import { isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';

export class JidError extends Error {
  readonly condition = 'jid-malformed';
}

const MAX_PART = 1023;
// RFC 7622 §3.3.1: characters a localpart may not hold, plus spaces and controls.
const LOCAL_FORBIDDEN = /["&'/:<>@\s\u0000-\u001F\u007F]/u;
const RESOURCE_FORBIDDEN = /[\u0000-\u001F\u007F]/u;

const PARSED = new Map<string, Jid>();
const PARSED_MAX = 50_000;

export class Jid {
  /**
   * The bare and full forms, made once: they key the maps of every hot path
   * (sessions, rosters, archives), and a string built per access would be
   * flattened and hashed again at each lookup.
   */
  readonly bare: string;
  private readonly full: string;

  private constructor(
    readonly local: string,
    readonly domain: string,
    readonly resource: string,
  ) {
    this.bare = local ? `${local}@${domain}` : domain;
    this.full = resource ? `${this.bare}/${resource}` : this.bare;
  }

  static parse(input: string): Jid {
    if (typeof input !== 'string' || input.length === 0) throw new JidError('empty JID');
    // Every stanza's to/from is parsed, mostly the same few JIDs over and
    // over: Unicode normalisation is the costly part, so results are cached.
    const cached = PARSED.get(input);
    if (cached) return cached;
    const jid = Jid.parseUncached(input);
    if (PARSED.size >= PARSED_MAX) PARSED.clear();
    PARSED.set(input, jid);
    return jid;
  }

  private static parseUncached(input: string): Jid {
    const slash = input.indexOf('/');
    const bareStr = slash >= 0 ? input.slice(0, slash) : input;
    const resource = slash >= 0 ? input.slice(slash + 1) : '';
    const at = bareStr.indexOf('@');
    const local = at >= 0 ? bareStr.slice(0, at) : '';
    const domain = at >= 0 ? bareStr.slice(at + 1) : bareStr;
    if (at >= 0 && local.length === 0) throw new JidError('empty localpart');
    if (slash >= 0 && resource.length === 0) throw new JidError('empty resourcepart');
    return Jid.of(local, domain, resource);
  }

  /** Parses or returns null: for untrusted attributes. */
  static tryParse(input: string | undefined | null): Jid | null {
    if (input === undefined || input === null) return null;
    try {
      return Jid.parse(input);
    } catch {
      return null;
    }
  }

  static of(local: string, domain: string, resource = ''): Jid {
    return new Jid(normaliseLocal(local), normaliseDomain(domain), normaliseResource(resource));
  }

  get isBare(): boolean {
    return this.resource === '';
  }

  toBare(): Jid {
    return this.resource ? new Jid(this.local, this.domain, '') : this;
  }

  withResource(resource: string): Jid {
    return new Jid(this.local, this.domain, normaliseResource(resource));
  }

  toString(): string {
    return this.full;
  }

  equals(other: Jid): boolean {
    return this.full === other.full;
  }
}

function checkLength(part: string, what: string): void {
  if (Buffer.byteLength(part, 'utf8') > MAX_PART) throw new JidError(`${what} longer than ${MAX_PART} bytes`);
}

function normaliseLocal(local: string): string {
  if (!local) return '';
  // UsernameCaseMapped: width-fold (NFKC handles the fullwidth forms), lower case, NFC.
  const out = local.normalize('NFKC').toLowerCase().normalize('NFC');
  if (LOCAL_FORBIDDEN.test(out)) throw new JidError('forbidden character in localpart');
  checkLength(out, 'localpart');
  return out;
}

function normaliseDomain(domain: string): string {
  let d = domain.endsWith('.') ? domain.slice(0, -1) : domain;
  if (!d) throw new JidError('empty domainpart');
  if (d.startsWith('[') && d.endsWith(']')) {
    // An IPv6 literal (RFC 7622 §3.2): only a real IPv6 address may sit in the brackets.
    if (!isIPv6(d.slice(1, -1))) throw new JidError('invalid IPv6 literal in domainpart');
    return d.toLowerCase();
  }
  d = d.normalize('NFC').toLowerCase();
  if (/[\s/@"&'<>\\]/.test(d) || domainToASCII(d) === '') throw new JidError('invalid domainpart');
  // Every label holds something: 'a..b' and '.' (a doubled final dot) are no domains.
  if (d.split('.').includes('')) throw new JidError('empty label in domainpart');
  checkLength(d, 'domainpart');
  return d;
}

function normaliseResource(resource: string): string {
  if (!resource) return '';
  const out = resource.normalize('NFC');
  if (RESOURCE_FORBIDDEN.test(out)) throw new JidError('forbidden character in resourcepart');
  checkLength(out, 'resourcepart');
  return out;
}

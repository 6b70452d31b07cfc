// The load generator's XMPP client: raw node:net/node:tls sockets, stanzas
// written as strings, replies found with indexOf/regex on the raw text (no
// XML parser, no DOM). SCRAM-SHA-1 keys are derived once per (password,
// salt, iterations) and reused, so a login costs the client one TLS
// handshake and two HMACs.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface Target {
  host: string;
  port: number;
  domain: string;
  password: string;
}

const NS_STREAM = 'http://etherx.jabber.org/streams';
export const streamHeader = (domain: string) =>
  `<?xml version='1.0'?><stream:stream to='${domain}' version='1.0' xmlns='jabber:client' xmlns:stream='${NS_STREAM}'>`;

interface ScramKeys {
  clientKey: Buffer;
  storedKey: Buffer;
}
const scramCache = new Map<string, ScramKeys>();

/** ClientKey/StoredKey for a password, salt and iteration count (cached: derived once). */
export function scramKeys(password: string, salt: string, iterations: number): ScramKeys {
  const key = `${password}\u0000${salt}\u0000${iterations}`;
  let k = scramCache.get(key);
  if (!k) {
    const salted = pbkdf2Sync(password, Buffer.from(salt, 'base64'), iterations, 20, 'sha1');
    const clientKey = createHmac('sha1', salted).update('Client Key').digest();
    k = { clientKey, storedKey: createHash('sha1').update(clientKey).digest() };
    scramCache.set(key, k);
  }
  return k;
}

/** The client-final-message (RFC 5802) for a server-first-message. */
export function scramFinal(clientFirstBare: string, serverFirst: string, password: string): string {
  const attrs = new Map(serverFirst.split(',').map((p) => [p[0]!, p.slice(2)] as const));
  const nonce = attrs.get('r')!;
  const { clientKey, storedKey } = scramKeys(password, attrs.get('s')!, Number(attrs.get('i')));
  const withoutProof = `c=biws,r=${nonce}`;
  const sig = createHmac('sha1', storedKey)
    .update(`${clientFirstBare},${serverFirst},${withoutProof}`)
    .digest();
  for (let i = 0; i < sig.length; i++) sig[i] = sig[i]! ^ clientKey[i]!;
  return `${withoutProof},p=${sig.toString('base64')}`;
}

/** Counts occurrences of a marker across chunk boundaries. */
export class Counter {
  private tail = '';
  constructor(private readonly marker: string) {}
  /** Returns how many complete markers this chunk finished. */
  feed(chunk: string): number {
    const m = this.marker;
    const s = this.tail.length ? this.tail + chunk : chunk;
    let n = 0;
    let end = 0;
    let i = s.indexOf(m);
    while (i !== -1) {
      n++;
      end = i + m.length;
      i = s.indexOf(m, end);
    }
    this.tail = s.slice(Math.max(end, s.length - (m.length - 1)));
    return n;
  }
}

export class LoginError extends Error {}

/** Microseconds on CLOCK_MONOTONIC: the same clock in every process of the machine (and in V8 profiles). */
export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * One client connection. `login()` runs connect + STARTTLS + SCRAM-SHA-1 +
 * bind + initial presence; afterwards `onData` receives every chunk.
 */
export class Conn {
  socket!: Socket | TLSSocket;
  jid = '';
  cipher = '';
  closed = false;
  /** Called with each received chunk once logged in. */
  onData: ((chunk: string) => void) | null = null;
  private buf = '';
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;

  constructor(
    readonly target: Target,
    readonly user: string,
    private readonly localAddress?: string,
  ) {}

  private attach(s: Socket | TLSSocket): void {
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      if (this.onData) return this.onData(d);
      this.buf += d;
      this.waiter?.();
    });
    s.on('error', (e) => this.fail(e));
    s.on('close', () => {
      this.closed = true;
      this.fail(new LoginError('connection closed'));
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.waiter?.();
  }

  /** Resolves with the regex match once the input matches; drops the input up to the match end. */
  private wait(re: RegExp, ms = 30000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new LoginError(`timeout waiting for ${re} (${this.user}); got ${this.buf.slice(-300)}`));
      }, ms);
      this.waiter = () => {
        const m = re.exec(this.buf);
        if (m) {
          this.buf = this.buf.slice(m.index + m[0].length);
        } else if (!this.failure) {
          return;
        }
        clearTimeout(timer);
        this.waiter = null;
        if (m) resolve(m);
        else
          reject(
            new LoginError(
              `${this.failure!.message} while waiting for ${re} (${this.user}); got ${this.buf.slice(-300)}`,
            ),
          );
      };
      this.waiter();
    });
  }

  write(s: string): void {
    this.socket.write(s);
  }

  async login(resource = 'bench', ms = 30000): Promise<void> {
    const { host, port, domain, password } = this.target;
    await new Promise<void>((resolve, reject) => {
      const s = netConnect({ host, port, localAddress: this.localAddress, noDelay: true }, () => resolve());
      s.once('error', reject);
      this.socket = s;
    });
    this.attach(this.socket);
    this.write(streamHeader(domain));
    const f1 = await this.wait(/<(?:stream:)?features[\s\S]*?<\/(?:stream:)?features>/, ms);
    if (!f1[0].includes('starttls')) throw new LoginError('no STARTTLS offered');
    this.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await this.wait(/<proceed[^>]*>/, ms);
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    raw.on('error', () => {});
    this.buf = '';
    const tls = await new Promise<TLSSocket>((resolve, reject) => {
      const t = tlsConnect({ socket: raw, servername: domain, rejectUnauthorized: false }, () => resolve(t));
      t.once('error', reject);
    });
    this.socket = tls;
    this.cipher = `${tls.getProtocol()} ${tls.getCipher().name}`;
    this.attach(tls);
    this.write(streamHeader(domain));
    const f2 = await this.wait(/<(?:stream:)?features[\s\S]*?<\/(?:stream:)?features>/, ms);
    if (!f2[0].includes('SCRAM-SHA-1<')) throw new LoginError(`no SCRAM-SHA-1 offered: ${f2[0]}`);
    const cnonce = randomBytes(18).toString('base64');
    const clientFirstBare = `n=${this.user},r=${cnonce}`;
    this.write(
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${Buffer.from(`n,,${clientFirstBare}`).toString('base64')}</auth>`,
    );
    const ch = await this.wait(/<challenge[^>]*>([^<]*)<\/challenge>|<failure[\s\S]*?<\/failure>/, ms);
    if (ch[1] === undefined) throw new LoginError(`SASL failed for ${this.user}: ${ch[0]}`);
    const serverFirst = Buffer.from(ch[1], 'base64').toString('utf8');
    const final = scramFinal(clientFirstBare, serverFirst, password);
    this.write(
      `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(final).toString('base64')}</response>`,
    );
    const ok = await this.wait(/<success[^>]*(?:\/>|>[^<]*<\/success>)|<failure[\s\S]*?<\/failure>/, ms);
    if (!ok[0].startsWith('<success')) throw new LoginError(`SASL failed for ${this.user}: ${ok[0]}`);
    this.buf = '';
    this.write(streamHeader(domain));
    await this.wait(/<(?:stream:)?features[\s\S]*?<\/(?:stream:)?features>/, ms);
    this.write(
      `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`,
    );
    const j = await this.wait(/<jid>([^<]+)<\/jid>|<error[\s\S]*?<\/iq>/, ms);
    if (j[1] === undefined) throw new LoginError(`bind failed for ${this.user}: ${j[0]}`);
    this.jid = j[1];
    // Initial presence, then a ping as a barrier: its reply (result or
    // error, both count) comes after the server processed the presence.
    this.write(`<presence/><iq type='get' id='ping1' to='${domain}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await this.wait(/id=["']ping1["']/, ms);
    this.buf = '';
  }

  /** Waits for a pattern on the raw input (before onData is set). */
  waitFor(re: RegExp, ms = 30000): Promise<RegExpExecArray> {
    return this.wait(re, ms);
  }

  /** Drains and returns what arrived so far (before onData is set). */
  take(): string {
    const b = this.buf;
    this.buf = '';
    return b;
  }

  close(): Promise<void> {
    if (this.closed || !this.socket) {
      this.socket?.destroy();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.socket.destroy();
        resolve();
      };
      const timer = setTimeout(done, 3000);
      this.socket.once('close', done);
      this.onData = () => {};
      this.socket.end('</stream:stream>');
    });
  }

  destroy(): void {
    this.socket?.destroy();
  }
}

/** Spreads client connections over 127.0.0.2–127.0.0.101 (fresh port ranges per address). */
export function localAddressFor(i: number): string {
  return `127.0.0.${2 + (i % 100)}`;
}

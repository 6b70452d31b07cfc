// A raw TCP (optionally TLS) peer for protocol-level tests: write bytes,
// wait until the accumulated input matches a pattern, upgrade to TLS.
import { connect as netConnect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';

export class RawSocket {
  input = '';
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(private socket: Socket) {
    this.attach(socket);
  }

  static connect(port: number, host = '127.0.0.1', tls = false): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const s = tls
        ? tlsConnect({ port, host, rejectUnauthorized: false }, () => resolve(new RawSocket(s)))
        : netConnect({ port, host }, () => resolve(new RawSocket(s)));
      s.once('error', reject);
    });
  }

  private attach(s: Socket): void {
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      this.input += d;
      this.notify();
    });
    s.on('close', () => {
      this.closed = true;
      this.notify();
    });
    s.on('error', () => {});
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Connects from a given local address (e.g. 127.0.0.7), to test per-address limits. */
  static connectFrom(port: number, localAddress: string, host = '127.0.0.1'): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const s = netConnect({ port, host, localAddress }, () => resolve(new RawSocket(s)));
      s.once('error', reject);
    });
  }

  /** Calls `fn` after every piece of input (and on close); returns a function that stops it. */
  onInput(fn: () => void): () => void {
    this.waiters.push(fn);
    return () => {
      const i = this.waiters.indexOf(fn);
      if (i >= 0) this.waiters.splice(i, 1);
    };
  }

  /** Stops reading (the server's writes pile up in the kernel, then in the server). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Bytes written by the test that the kernel has not taken yet. */
  get unsent(): number {
    return this.socket.writableLength;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until the input matches; returns the match. */
  waitFor(pattern: RegExp, ms = 5000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.input.match(pattern);
        if (m) {
          done();
          resolve(m);
        } else if (this.closed) {
          done();
          reject(new Error(`connection closed before ${pattern}; got: ${this.input.slice(-500)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${pattern}; got: ${this.input.slice(-500)}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters.splice(this.waiters.indexOf(check), 1);
      };
      this.waiters.push(check);
      check();
    });
  }

  /** Waits for the socket to close. */
  waitClosed(ms = 5000): Promise<void> {
    // (?!) never matches: this waits for the close itself, whatever the input.
    return this.waitFor(/(?!)/, ms).then(
      () => undefined,
      (err: Error) => {
        if (this.closed) return;
        throw err;
      },
    );
  }

  /** Upgrades to TLS in place (after <proceed/>). */
  startTls(servername = 'localhost'): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.removeAllListeners('data');
      this.socket.removeAllListeners('close');
      const t = tlsConnect({ socket: this.socket, servername, rejectUnauthorized: false }, () => resolve());
      t.once('error', reject);
      this.input = '';
      this.socket = t;
      this.attach(t);
    });
  }

  /** The TLS socket once upgraded (channel binding data on the client side), else null. */
  get tls(): TLSSocket | null {
    return 'encrypted' in this.socket ? (this.socket as TLSSocket) : null;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export const streamHeader = (to = 'localhost') =>
  `<?xml version='1.0'?><stream:stream to='${to}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`;

/** Opens a stream and upgrades it with STARTTLS: a secured, unauthenticated stream and its features. */
export async function securedStream(port: number, localAddress?: string, domain = 'localhost'): Promise<{ s: RawSocket; features: string }> {
  const s = localAddress ? await RawSocket.connectFrom(port, localAddress) : await RawSocket.connect(port);
  s.write(streamHeader(domain));
  await s.waitFor(/<\/stream:features>/);
  s.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await s.waitFor(/<proceed/);
  await s.startTls(domain);
  s.write(streamHeader(domain));
  const [features] = await s.waitFor(/<stream:features>.*<\/stream:features>/s);
  return { s, features: features! };
}

/** Opens a stream, STARTTLS, PLAIN auth, bind: a logged-in raw client. */
export async function rawLogin(
  port: number,
  user: string,
  password: string,
  resource = 'raw',
  localAddress?: string,
  domain = 'localhost',
): Promise<RawSocket> {
  const { s } = await securedStream(port, localAddress, domain);
  const auth = Buffer.from(`\0${user}\0${password}`).toString('base64');
  s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${auth}</auth>`);
  await s.waitFor(/<success/);
  s.input = '';
  s.write(streamHeader(domain));
  await s.waitFor(/<\/stream:features>/);
  s.write(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await s.waitFor(/<jid>[^<]+<\/jid>/);
  s.input = '';
  return s;
}

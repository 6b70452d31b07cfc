// A hand-driven server-to-server peer for tests: it connects to a s2s port,
// does STARTTLS and Server Dialback for real (the key comes from the caller,
// e.g. the genuine authoritative server's S2SService, so the receiving
// server's verify round trip succeeds), then lets the test write whatever
// stanzas it likes, including forged ones.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Element } from '../../src/xml/element.ts';
import { XmlStreamParser } from '../../src/xml/stream-parser.ts';

export class RawS2SPeer {
  readonly received: Element[] = [];
  streamId = '';
  private socket!: Socket;
  private parser!: XmlStreamParser;
  private waiters: Array<{ pred: (e: Element) => boolean; resolve: (e: Element) => void }> = [];
  /** Resolves when the connection is gone. */
  readonly closed: Promise<void>;
  private markClosed!: () => void;
  private openWaiter: ((attrs: Record<string, string>) => void) | null = null;

  constructor(
    private readonly from: string,
    private readonly to: string,
  ) {
    this.closed = new Promise((r) => {
      this.markClosed = r;
    });
  }

  /** Connects, STARTTLS, dialback with the key `keyFor(streamId)` gives. */
  async authenticate(port: number, keyFor: (streamId: string) => string): Promise<Element> {
    this.socket = netConnect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('close', () => this.markClosed());
    this.socket.on('error', () => {});
    this.attach(this.socket);
    await this.open();
    const f1 = await this.waitFor((e) => e.name === 'stream:features', 'features');
    if (!f1.getChild('starttls')) throw new Error(`no STARTTLS offered: ${f1}`);
    this.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await this.waitFor((e) => e.name === 'proceed', 'proceed');
    const raw = this.socket;
    raw.removeAllListeners('data');
    const tls = tlsConnect({ socket: raw, servername: this.to, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      tls.once('secureConnect', resolve);
      tls.once('error', reject);
    });
    tls.on('error', () => {});
    this.socket = tls;
    this.attach(tls);
    await this.open();
    await this.waitFor((e) => e.name === 'stream:features', 'features after TLS');
    this.write(`<db:result from='${this.from}' to='${this.to}'>${keyFor(this.streamId)}</db:result>`);
    return this.waitFor((e) => e.name === 'db:result' && e.attrs.type !== undefined, 'db:result verdict');
  }

  private attach(socket: Socket): void {
    this.parser = new XmlStreamParser(
      { maxStanzaSize: 1 << 20, maxDepth: 64 },
      {
        open: (_name, attrs) => {
          this.streamId = attrs.id ?? '';
          this.openWaiter?.(attrs);
        },
        stanza: (el) => {
          this.received.push(el);
          for (const w of [...this.waiters]) {
            if (w.pred(el)) {
              this.waiters.splice(this.waiters.indexOf(w), 1);
              w.resolve(el);
            }
          }
        },
        close: () => {},
        error: () => {},
      },
    );
    socket.on('data', (d: Buffer) => this.parser.write(d));
  }

  private open(): Promise<Record<string, string>> {
    const opened = new Promise<Record<string, string>>((resolve) => {
      this.openWaiter = resolve;
    });
    this.write(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'` +
        ` xmlns:db='jabber:server:dialback' from='${this.from}' to='${this.to}' version='1.0'>`,
    );
    return opened;
  }

  write(xml: string): void {
    this.socket.write(xml);
  }

  waitFor(pred: (e: Element) => boolean, what: string, ms = 5000): Promise<Element> {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`raw s2s peer: timed out waiting for ${what}`)), ms);
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  destroy(): void {
    this.socket?.destroy();
  }
}

// A hand-driven XEP-0114 component for tests: a plain TCP socket, our own
// stream parser for what comes back, and the handshake computed by hand
// (SHA-1 of stream id + secret, as XEP-0114 §3 says), so a test can send
// exactly what it wants, right or wrong.
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { type Element, parse } from '../../src/xml/element.ts';
import { XmlStreamParser } from '../../src/xml/stream-parser.ts';

export class RawComponent {
  readonly stanzas: Element[] = [];
  header: Record<string, string> | null = null;
  closed = false;
  private readonly waiters: Array<() => void> = [];
  private readonly parser: XmlStreamParser;

  private constructor(private readonly socket: Socket) {
    this.parser = new XmlStreamParser(
      { maxStanzaSize: 1 << 24, maxDepth: 64 },
      {
        open: (_name, attrs) => {
          this.header = attrs;
          this.notify();
        },
        stanza: (el) => {
          this.stanzas.push(el);
          this.notify();
        },
        close: () => this.notify(),
        error: () => this.notify(),
      },
    );
    socket.on('data', (d) => this.parser.write(d));
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', () => {});
  }

  static open(port: number): Promise<RawComponent> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1' }, () => resolve(new RawComponent(s)));
      s.once('error', reject);
    });
  }

  /** Opens a stream for `domain` and answers the handshake with `secret`; resolves with what came back. */
  static async connect(port: number, domain: string, secret: string): Promise<RawComponent> {
    const c = await RawComponent.open(port);
    await c.handshake(domain, secret);
    return c;
  }

  async handshake(domain: string, secret: string): Promise<Element> {
    this.write(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}'>`,
    );
    await this.until(() => this.header !== null || this.closed, 'stream header');
    const id = this.header?.id ?? '';
    this.write(`<handshake>${createHash('sha1').update(id + secret).digest('hex')}</handshake>`);
    return this.waitFor((s) => s.name === 'handshake' || s.name === 'stream:error', 'handshake answer');
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  write(data: string): void {
    this.socket.write(data);
  }

  send(xml: string): void {
    this.write(xml);
  }

  private until(cond: () => boolean, what: string, ms = 10000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!cond()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`component: timed out waiting for ${what}; got ${this.stanzas.map(String).join('\n')}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        const i = this.waiters.indexOf(check);
        if (i >= 0) this.waiters.splice(i, 1);
      };
      this.waiters.push(check);
      check();
    });
  }

  /** Resolves with (and removes) the first stanza, past or future, matching pred. */
  async waitFor(pred: (s: Element) => boolean, what = 'stanza', ms = 10000): Promise<Element> {
    let found: Element | undefined;
    await this.until(() => {
      found = this.stanzas.find(pred);
      return found !== undefined;
    }, what, ms).catch((err) => {
      throw this.closed ? new Error(`${err.message} (connection closed)`) : err;
    });
    this.stanzas.splice(this.stanzas.indexOf(found!), 1);
    return found!;
  }

  /** The stream error's condition once the server closes the stream. */
  async streamError(ms = 10000): Promise<string> {
    const e = await this.waitFor((s) => s.name === 'stream:error', 'stream error', ms);
    const condition = e.children.find((c): c is Element => typeof c !== 'string' && c.name !== 'text');
    return condition?.name ?? '';
  }

  waitClosed(ms = 10000): Promise<void> {
    return this.until(() => this.closed, 'connection close', ms);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Parses an XML snippet (for building expected stanzas in tests). */
export const xmlOf = (s: string): Element => parse(s);

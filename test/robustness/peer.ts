// A logged-in raw client for robustness tests: writes whatever bytes a test
// wants (hostile or malformed), and reads the server's replies as parsed
// elements, strictly: the server's own output must be well-formed XML that
// our stream parser accepts, or the test fails. Also: error-condition
// helpers and the "still serving" check every robustness test ends with.
import assert from 'node:assert/strict';
import type { Element } from '../../src/xml/element.ts';
import { XmlStreamParser } from '../../src/xml/stream-parser.ts';
import { RawSocket, rawLogin } from '../helpers/raw-socket.ts';
import type { TestServer } from '../helpers/server.ts';

const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';

let counter = 0;
/** A fresh stanza id. */
export const nextId = (): string => `r${++counter}`;

export class Peer {
  /** Parsed top-level elements not yet taken by a wait. */
  readonly stanzas: Element[] = [];
  /** Set when the server's output is not well-formed XML (always a bug). */
  outputError: string | null = null;
  private fed = 0;
  private readonly parser: XmlStreamParser;

  constructor(
    readonly raw: RawSocket,
    readonly jid: string,
  ) {
    // Strict parsing, but bounded only by what a test could legitimately see.
    this.parser = new XmlStreamParser(
      { maxStanzaSize: 16 * 1024 * 1024, maxDepth: 256 },
      {
        open: () => {},
        stanza: (e) => this.stanzas.push(e),
        close: () => {},
        error: (c, t) => {
          this.outputError = `${c}: ${t}`;
        },
      },
    );
    // rawLogin consumed the server's stream header; give the parser one.
    this.parser.write(
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
  }

  static async login(ts: TestServer, user: string, resource = 'raw'): Promise<Peer> {
    const raw = await rawLogin(ts.port, user, 'pw', resource);
    return new Peer(raw, `${user}@${ts.config.domain}/${resource}`);
  }

  get closed(): boolean {
    return this.raw.closed;
  }

  send(xml: string | Buffer): void {
    this.raw.write(xml);
  }

  private pump(): void {
    if (this.raw.input.length > this.fed) {
      this.parser.write(this.raw.input.slice(this.fed));
      this.fed = this.raw.input.length;
    }
    if (this.outputError) {
      throw new Error(`server output is not well-formed (${this.outputError}): ${this.raw.input.slice(-600)}`);
    }
  }

  /** Waits for (and takes) the first element matching `pred`. */
  async waitFor(pred: (e: Element) => boolean, what: string, ms = 5000): Promise<Element> {
    const deadline = Date.now() + ms;
    for (;;) {
      this.pump();
      const i = this.stanzas.findIndex(pred);
      if (i >= 0) return this.stanzas.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0 || this.raw.closed) {
        throw new Error(
          `${this.raw.closed ? 'connection closed' : 'timed out'} waiting for ${what}; got: ${this.raw.input.slice(-600)}`,
        );
      }
      // Resolves as soon as any new byte arrives (or the socket closes).
      await this.raw.waitFor(new RegExp(`^[\\s\\S]{${this.raw.input.length + 1}}`), left).catch(() => {});
    }
  }

  /** Sends a stanza whose id is `{id}` in the template; resolves with the reply of that id. */
  async request(template: string, ms = 5000): Promise<Element> {
    const id = nextId();
    this.send(template.replaceAll('{id}', id));
    return this.waitFor((e) => e.attrs.id === id && e.attrs.type !== undefined, `reply to ${id}`, ms);
  }

  /** Sends a stanza that must be answered with an error; returns the condition. */
  async expectError(template: string, ms = 5000): Promise<string> {
    const reply = await this.request(template, ms);
    const condition = stanzaErrorCondition(reply);
    assert.ok(condition, `expected an error reply to ${template}, got ${reply.toString()}`);
    return condition;
  }

  /** Waits for a stream error; returns its condition (the stream must then close). */
  async expectStreamError(ms = 5000): Promise<string> {
    const e = await this.waitFor((s) => s.name === 'stream:error', 'a stream error', ms);
    const cond = e.getChildElements().find((c) => c.getNS() === STREAMS && c.name !== 'text');
    assert.ok(cond, `stream error without a condition: ${e.toString()}`);
    await this.raw.waitClosed();
    return cond.name;
  }

  /** Nothing but whitespace, a well-formed reply or nothing at all has arrived. */
  noStreamError(): void {
    this.pump();
    const err = this.stanzas.find((s) => s.name === 'stream:error');
    assert.equal(err, undefined, `unexpected stream error: ${err?.toString()}`);
  }

  /** A ping round trip: everything sent before it has been processed. */
  async sync(): Promise<void> {
    const r = await this.request("<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert.equal(r.attrs.type, 'result', r.toString());
  }

  close(): void {
    if (!this.raw.closed) this.raw.destroy();
  }
}

/** The defined condition of an error stanza, or null when it is not one. */
export function stanzaErrorCondition(stanza: Element): string | null {
  if (stanza.attrs.type !== 'error') return null;
  const error = stanza.getChild('error');
  const cond = error?.getChildElements().find((c) => c.getNS() === STANZAS && c.name !== 'text');
  return cond?.name ?? null;
}

/** Starts, for a test server: two users who can talk, to prove the server still serves. */
export async function witnesses(ts: TestServer): Promise<{ a: Peer; b: Peer }> {
  await ts.addUser('wit1', 'pw');
  await ts.addUser('wit2', 'pw');
  return { a: await Peer.login(ts, 'wit1', 'w'), b: await Peer.login(ts, 'wit2', 'w') };
}

/**
 * The server is up and routing: a fresh login works, a message between
 * two clients arrives, and the log holds no handler failure or crash.
 */
export async function assertStillServing(ts: TestServer, w: { a: Peer; b: Peer }): Promise<void> {
  const text = `alive-${nextId()}`;
  w.a.send(`<message to='${w.b.jid}' type='chat'><body>${text}</body></message>`);
  const got = await w.b.waitFor((s) => s.name === 'message' && s.getChildText('body') === text, 'witness message');
  assert.equal(got.attrs.from, w.a.jid);
  const fresh = await RawSocket.connect(ts.port);
  fresh.write(
    "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
  );
  await fresh.waitFor(/<\/stream:features>/);
  fresh.destroy();
  assertCleanLogs(ts);
}

/** No handler failure, uncaught error or internal error in the server log. */
export function assertCleanLogs(ts: TestServer): void {
  const bad = ts.logs.filter((l) => /handler failed|uncaught|unhandled|internal-server-error|TypeError|RangeError/i.test(l));
  assert.deepEqual(bad, [], 'server log shows failures');
}

/** Attribute-safe text. */
export function attr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
}

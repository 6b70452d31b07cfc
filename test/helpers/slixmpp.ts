// Drives Debian's python3-slixmpp (a real, independent XMPP client) from
// tests through test/helpers/slixmpp_client.py: JSON lines in and out.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parse, type Element } from '../../src/xml/element.ts';

// Debian's python3 is the one that has slixmpp; another may be first on PATH.
export const DEBIAN_PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./slixmpp_client.py', import.meta.url));

export interface SlixEvent {
  event: string;
  id?: string;
  jid?: string;
  xml?: string;
  text?: string;
}

export interface SlixOptions {
  jid: string;
  password: string;
  port: number;
  host?: string;
  mech?: 'SCRAM-SHA-256' | 'SCRAM-SHA-1' | 'PLAIN';
  directTls?: boolean;
  /** slixmpp plugins to load before connecting (e.g. xep_0030, xep_0115, xep_0084). */
  plugins?: string[];
}

/** The answer to an `op()`: the operation's value, or the error condition slixmpp raised. */
export interface SlixOpResult {
  ok: boolean;
  value?: Record<string, unknown>;
  condition?: string;
  text?: string;
}

/** A slixmpp call the server refused: `reply` is the error iq. */
export class SlixCallError extends Error {
  constructor(
    message: string,
    readonly reply: Element | undefined,
  ) {
    super(message);
  }
}

export class SlixClient {
  readonly events: SlixEvent[] = [];
  private readonly waiters: Array<{ pred: (e: SlixEvent) => boolean; resolve: (e: SlixEvent) => void }> = [];
  private readonly proc: ChildProcess;
  jid = '';
  stderr = '';

  constructor(o: SlixOptions) {
    const args = [SCRIPT, o.jid, o.password, o.host ?? '127.0.0.1', String(o.port)];
    if (o.mech) args.push('--mech', o.mech);
    if (o.directTls) args.push('--direct-tls');
    if (o.plugins?.length) args.push('--plugins', o.plugins.join(','));
    this.proc = spawn(DEBIAN_PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => {
      this.stderr += d;
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let ev: SlixEvent;
      try {
        ev = JSON.parse(line) as SlixEvent;
      } catch {
        return;
      }
      this.events.push(ev);
      for (const w of [...this.waiters]) {
        if (w.pred(ev)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(ev);
        }
      }
    });
    this.proc.on('exit', () => {
      const ev = { event: 'exit' };
      this.events.push(ev);
      for (const w of [...this.waiters]) if (w.pred(ev)) w.resolve(ev);
    });
  }

  /** Resolves with the first event (past or future) matching pred. */
  waitEvent(pred: (e: SlixEvent) => boolean, what: string, ms = 10000): Promise<SlixEvent> {
    const seen = this.events.find(pred);
    if (seen) {
      this.events.splice(this.events.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`slixmpp: timed out waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`));
      }, ms);
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          const i = this.events.indexOf(e);
          if (i >= 0) this.events.splice(i, 1);
          resolve(e);
        },
      });
    });
  }

  /** Waits for login; rejects if authentication fails or the process exits. */
  async started(ms = 15000): Promise<string> {
    const ev = await this.waitEvent(
      (e) => ['session_start', 'failed_auth', 'exit', 'disconnected'].includes(e.event),
      'session start',
      ms,
    );
    if (ev.event !== 'session_start') throw new Error(`slixmpp login failed: ${ev.event}`);
    this.jid = ev.jid!;
    return this.jid;
  }

  /** Waits for a received stanza matching pred. */
  async waitStanza(pred: (s: Element) => boolean, what = 'stanza', ms = 10000): Promise<Element> {
    const ev = await this.waitEvent((e) => e.event === 'stanza' && pred(parse(e.xml!)), what, ms);
    return parse(ev.xml!);
  }

  private calls = 0;

  /**
   * Calls a method of a loaded slixmpp plugin (or of the client when `plugin`
   * is null) and resolves with the result's XML; rejects with a SlixCallError
   * carrying the error reply when the server answered with an error.
   */
  async call(plugin: string | null, method: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}, ms = 15000): Promise<string> {
    const id = `c${++this.calls}`;
    this.proc.stdin!.write(`${JSON.stringify({ cmd: 'call', id, plugin, method, args, kwargs })}\n`);
    const ev = await this.waitEvent((e) => (e.event === 'result' || e.event === 'call_error' || e.event === 'exit') && (e.id === id || e.event === 'exit'), `${plugin}.${method}`, ms);
    if (ev.event === 'result') return ev.xml ?? '';
    throw new SlixCallError(`${plugin}.${method} failed: ${ev.text ?? ev.event}`, ev.xml ? parse(ev.xml) : undefined);
  }

  private ops = 0;

  /** Runs one of the scenario operations (OPS in slixmpp_client.py), e.g. a MUC join through slixmpp's plugin. */
  async op(name: string, args: Record<string, unknown>, ms = 40000): Promise<SlixOpResult> {
    const id = `o${++this.ops}`;
    this.proc.stdin!.write(`${JSON.stringify({ cmd: 'op', id, op: name, args })}\n`);
    const ev = await this.waitEvent((e) => e.event === 'op_result' && e.id === id, `${name} result`, ms);
    return ev as unknown as SlixOpResult;
  }

  send(xml: string | Element): void {
    this.proc.stdin!.write(`${JSON.stringify({ cmd: 'send', xml: xml.toString() })}\n`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin!.write(`${JSON.stringify({ cmd: 'stop' })}\n`);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

// A session bound on another cluster node, as this node sees it: a mirror
// in the local session registry, so every module (presence broadcast,
// message delivery by priority, carbons, roster pushes, blocking) works
// across nodes unchanged. What it sends goes to the owning node's inbox;
// what a module changes on it (presence, priority, roster interest,
// session data) is applied here at once and sent to the owner, which
// applies it to the real session and tells every node.
import type { ClientSession } from '../host/session.ts';
import { Jid } from '../jid/jid.ts';
import { type Element, parse } from '../xml/element.ts';
import type { StreamErrorName } from '../xml/errors.ts';
import { type Command, type CommandResult, decodeValue, encodeValue, type SessionState } from './wire.ts';
import { trackDurable } from '../storage/durability.ts';

/** What a mirror needs from the cluster: sending commands to its node. */
export interface MirrorLink {
  /** Queues a command to `instance`: 'ok' once its inbox has it, 'gone' when the instance is dead, 'error' when Redis failed. */
  command(instance: string, cmd: Command): Promise<CommandResult>;
  /** A stanza for a session that turned out to be gone, or that Redis could not take. */
  undeliverable(session: RemoteSession, stanza: Element, why: Exclude<CommandResult, 'ok'>): void;
}

export class RemoteSession implements ClientSession {
  readonly kind = 'c2s' as const;
  readonly id: string;
  readonly jid: Jid;
  readonly bindOrder: number;
  /** The owner's states start at 1; a session just handed to another node is mirrored there at 0 (cluster.ts). */
  version = -1;
  ip = '';
  secure = false;
  transport: 'tcp' | 'websocket' = 'tcp';
  private presenceEl: Element | null = null;
  private prio = 0;
  private rr = false;
  readonly data: Map<string, unknown>;
  /** The last command sent to the owner: whenSent waits for it. */
  private lastSent: Promise<boolean> = Promise.resolve(true);

  constructor(
    readonly instance: string,
    state: SessionState,
    private readonly link: MirrorLink,
  ) {
    this.id = state.s;
    this.jid = Jid.parse(state.j);
    this.bindOrder = state.b;
    this.data = new ForwardingMap((k, v, del) => this.forward(del ? { t: 'data', j: state.j, s: state.s, k, del: true } : { t: 'data', j: state.j, s: state.s, k, v: encodeValue(v) }));
    this.apply(state);
  }

  /** Takes the owner's newer state; older or equal versions are ignored. */
  apply(state: SessionState): boolean {
    if (state.v <= this.version) return false;
    this.version = state.v;
    this.ip = state.ip;
    this.secure = state.sec;
    this.transport = state.tr;
    this.presenceEl = state.p === null ? null : parse(state.p);
    this.prio = state.pr;
    this.rr = state.rr;
    (this.data as ForwardingMap).replace(state.d.map(([k, v]) => [k, decodeValue(v)]));
    return true;
  }

  get presence(): Element | null {
    return this.presenceEl;
  }
  set presence(p: Element | null) {
    this.presenceEl = p;
    this.forward({ t: 'set', j: this.jid.toString(), s: this.id, f: 'presence', v: p === null ? null : p.toString() });
  }
  get priority(): number {
    return this.prio;
  }
  set priority(n: number) {
    this.prio = n;
    this.forward({ t: 'set', j: this.jid.toString(), s: this.id, f: 'priority', v: n });
  }
  get rosterRequested(): boolean {
    return this.rr;
  }
  set rosterRequested(b: boolean) {
    this.rr = b;
    this.forward({ t: 'set', j: this.jid.toString(), s: this.id, f: 'rosterRequested', v: b });
  }

  private forward(cmd: Command): void {
    void this.link.command(this.instance, cmd);
  }

  send(stanza: Element): void {
    const sent = this.link.command(this.instance, { t: 'send', j: this.jid.toString(), s: this.id, x: stanza.toString() });
    this.lastSent = sent.then((r) => r === 'ok');
    // Tracked by the durability barrier of the stanza being handled: the
    // sender's later replies wait until this is in the owner's inbox, or
    // handled here (a message stored offline) when that failed.
    trackDurable(
      sent.then((r) => {
        if (r !== 'ok') this.link.undeliverable(this, stanza, r);
      }),
    );
  }

  close(error?: StreamErrorName, text?: string): void {
    this.forward({ t: 'close', j: this.jid.toString(), s: this.id, e: error, m: text });
  }

  /** Storage work of this session's stanzas is tracked on its own node. */
  whenDurable(): Promise<void> {
    return Promise.resolve();
  }

  /** True once everything sent so far is in the owner's inbox (a dead owner's inbox is re-routed, never dropped). */
  whenSent(): Promise<boolean> {
    return this.lastSent;
  }

  /** The owning node paces the client's output itself; here, the inbox having taken what was sent is enough. */
  whenWritable(): Promise<boolean> {
    return this.lastSent;
  }
}

/** Session data of a mirror: changes made here go to the owner as well. */
class ForwardingMap extends Map<string, unknown> {
  private applying = false;

  constructor(private readonly onChange: (key: string, value: unknown, deleted: boolean) => void) {
    super();
  }

  /** Replaces the contents with the owner's (not forwarded). */
  replace(entries: Array<[string, unknown]>): void {
    this.applying = true;
    try {
      super.clear();
      for (const [k, v] of entries) this.set(k, v);
    } finally {
      this.applying = false;
    }
  }

  override set(key: string, value: unknown): this {
    super.set(key, value);
    if (!this.applying && this.onChange) this.onChange(key, value, false);
    return this;
  }

  override delete(key: string): boolean {
    const had = super.delete(key);
    if (had && !this.applying) this.onChange(key, undefined, true);
    return had;
  }
}

// One client stream (RFC 6120): negotiation (STARTTLS, SASL, bind), then
// stanzas into the router. The same class serves TCP and WebSocket through
// the Framing seam, so every limit and rule applies to both.
import { answerStartTls } from '../stream/starttls.ts';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Host } from '../host/host.ts';
import type { ClientSession } from '../host/session.ts';
import { Jid, JidError } from '../jid/jid.ts';
import type { Server } from '../server.ts';
import { checkStanzaShape } from '../router/stanza-check.ts';
import type { Framing } from '../stream/framing.ts';
import { type Element, el, firstChild, parse } from '../xml/element.ts';
import { decodeValue, encodeValue, type HandoverState } from '../cluster/wire.ts';
import {
  type ErrorType,
  errorElement,
  errorReply,
  type StanzaErrorCondition,
  type StreamErrorName,
  streamErrorElement,
} from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { DurabilityBarrier } from '../storage/durability.ts';
import type { InboundStream } from '../stream/inbound-context.ts';
import { ClientState } from './client-state.ts';
import { type ChannelBinding, channelBindingFeature, NO_CHANNEL_BINDING } from '../auth/channel-binding.ts';
import { createExchange, offeredMechanisms, type SaslExchange, type SaslStep } from './sasl.ts';
import { Sasl2, type Sasl2Session } from './sasl2.ts';
import { handBackUnacknowledged } from './hand-back.ts';
import { SlowConsumerGuard } from './slow-consumer.ts';
import { failed, newSmId, readH, type SmSession, StreamManagement } from './stream-management.ts';

type State = 'wait-open' | 'negotiating' | 'bound' | 'closed';
/** Writes <resumed/> (and what must precede the resent stanzas) for the session that resumed. */
type Announce = (resumed: Element, session: C2SSession) => void;

// What waits in the durability barrier: a stanza, or the end of the stream.
type Outgoing = Element | (() => void);

// A stream closed while output waits for storage is dropped after this long
// even if the storage never answers.
const CLOSE_WAIT_MS = 10_000;

export class C2SSession implements ClientSession, InboundStream, SmSession, Sasl2Session {
  readonly kind = 'c2s' as const;
  /** Kept by a session resumed from another cluster node (it is the same session). */
  id: string = randomUUID();
  readonly data = new Map<string, unknown>();
  /**
   * Output to the client waits here while storage work of its earlier
   * stanzas is pending (storage/durability.ts); XEP-0198 counts on it.
   */
  readonly barrier = new DurabilityBarrier<Outgoing>((item) =>
    typeof item === 'function' ? item() : this.deliver(item),
  );
  /** XEP-0198 state, once the client enabled stream management. */
  sm: StreamManagement | null = null;
  /** XEP-0352: held back while the client says it is inactive. */
  readonly csi: ClientState;
  /** Bounds what waits for a client that does not read (c2s/slow-consumer.ts). */
  private readonly outbound: SlowConsumerGuard;
  /** How many congested sessions have asked this one to stop reading. */
  private pausedBy = 0;
  /** The transport is gone and the session waits to be resumed (XEP-0198). */
  private hibernating = false;
  presence: Element | null = null;
  priority = 0;
  rosterRequested = false;
  jid!: Jid;

  private state: State = 'wait-open';
  private host: Host | null = null;
  private account: string | null = null;
  private sasl: SaslExchange | null = null;
  private saslBusy = false;
  /** XEP-0388 negotiation, once the client started one. */
  private sasl2: Sasl2 | null = null;
  private authFailures = 0;
  private authTimer: NodeJS.Timeout | null;
  private readonly onEnded: (s: C2SSession) => void;

  constructor(
    private readonly server: Server,
    private framing: Framing,
    onEnded: (s: C2SSession) => void,
  ) {
    this.onEnded = onEnded;
    this.csi = new ClientState(server.config.csi.maxHeld, (stanza) => this.barrier.output(stanza));
    const { limits } = server.config;
    this.outbound = new SlowConsumerGuard(
      () => (this.hibernating || this.state === 'closed' ? null : this.framing),
      {
        queueSize: limits.outboundQueueSize,
        maxQueueSize: limits.outboundQueueMaxSize,
        timeoutMs: limits.slowConsumerTimeout * 1000,
      },
      (why) => this.tooSlow(why),
    );
    this.attach(framing);
    // An unauthenticated connection may not linger (slowloris, idle scans).
    this.authTimer = setTimeout(
      () => this.close('connection-timeout', 'authentication took too long'),
      server.config.limits.authTimeout * 1000,
    );
    this.authTimer.unref();
  }

  private attach(framing: Framing): void {
    framing.setHandlers({
      open: (attrs, name) => this.onOpen(attrs, name),
      stanza: (s) => this.onStanza(s),
      close: () => this.onClientClose(),
      error: (condition, text) => this.close(condition, text),
      end: () => this.transportLost(),
    });
  }

  get ip(): string {
    return this.framing.remoteAddress;
  }
  get secure(): boolean {
    return this.framing.secure;
  }
  get transport(): 'tcp' | 'websocket' {
    return this.framing.transport;
  }
  /** The TLS channel bindings of the current transport (none without TLS). */
  get binding(): ChannelBinding {
    return this.framing.channelBinding?.() ?? NO_CHANNEL_BINDING;
  }
  get authenticated(): boolean {
    return this.account !== null;
  }
  get bound(): boolean {
    return this.state === 'bound';
  }

  send(stanza: Element): void {
    if (this.state !== 'closed') this.csi.send(stanza);
  }

  /** The account's localpart once authenticated, and the host (for stream management). */
  get user(): string | null {
    return this.account;
  }
  get hostName(): string | null {
    return this.host?.name ?? null;
  }
  get received(): number {
    return this.barrier.received;
  }
  get durableThrough(): number {
    return this.barrier.durableThrough;
  }

  /** Where a stanza leaves the durability barrier: counted for stream management, then written. */
  private deliver(stanza: Element): void {
    this.sm?.onStanzaOut(stanza);
    if (!this.hibernating) {
      this.framing.send(stanza);
      this.outbound.afterWrite();
    } else if (stanza.name === 'message') this.held(stanza);
  }

  /**
   * A message waits for this session to be resumed (XEP-0198): the user's
   * host hears of it as `message/held`, so push notifications (XEP-0357)
   * can wake the client.
   */
  private held(stanza: Element): void {
    const host = this.host!;
    const from = Jid.tryParse(stanza.attrs.from) ?? Jid.of('', host.name);
    try {
      host.events.fire('message/held', { stanza, origin: { kind: 'c2s', session: this }, host, to: this.jid, from });
    } catch (err) {
      this.server.log.error('message/held handler failed', { error: String((err as Error)?.stack ?? err) });
    }
  }

  writeStanza(stanza: Element): void {
    if (!this.hibernating) {
      this.framing.send(stanza);
      this.outbound.afterWrite();
    }
  }

  writeNonza(nonza: Element): void {
    if (!this.hibernating && this.state !== 'closed') this.framing.send(nonza);
  }

  /**
   * The client does not read what it is sent: the session lets go of its
   * transport at once (nothing more is queued for it; with stream management
   * it may be resumed), and the transport ends after what is queued with a
   * policy-violation stream error, dropped with its queue if still unread
   * after the framing's close grace (5 s) (slow-consumer.ts).
   */
  private tooSlow(why: string): void {
    if (this.state === 'closed' || this.hibernating) return;
    this.server.log.warn('closing a client that does not read', { ip: this.ip, jid: this.jid?.toString(), why });
    const old = this.framing;
    old.setHandlers({ open() {}, stanza() {}, close() {}, error() {}, end() {} });
    old.send(streamErrorElement('policy-violation', 'you do not read what you are sent'));
    old.closeStream();
    this.transportLost();
  }

  queueNonza(make: () => Element): void {
    this.barrier.output(() => this.writeNonza(make()));
  }

  whenDurable(): Promise<void> {
    return this.barrier.whenDurable();
  }

  whenSent(): Promise<boolean> {
    return this.barrier.whenSent();
  }

  whenWritable(): Promise<boolean> {
    if (this.state === 'closed') return Promise.resolve(false);
    // Hibernating (stream management): what is sent waits in its queue.
    if (this.hibernating || this.framing.unsentBytes <= this.server.config.limits.outboundQueueSize) {
      return Promise.resolve(true);
    }
    const framing = this.framing;
    return new Promise<void>((resolve) => framing.onceDrained(resolve)).then(() => this.whenWritable());
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  pauseReading(): void {
    if (this.pausedBy++ === 0) this.framing.pause?.();
  }

  resumeReading(): void {
    if (this.pausedBy > 0 && --this.pausedBy === 0) this.framing.resume?.();
  }

  /** Sends a keepalive when the stream has been quiet since `before` (ms). */
  keepaliveIfIdle(before: number): void {
    if (this.state === 'bound' && (this.framing.lastWrite ?? before) < before) this.framing.keepalive?.();
  }

  close(error?: StreamErrorName, text?: string, extra?: Element): void {
    if (this.state === 'closed') return;
    if (this.hibernating) {
      // No transport to say it on: the session just ends (what it held is redelivered).
      this.server.log.info('stream management session ended', { jid: this.jid.toString(), reason: text ?? error });
      this.state = 'closed';
      this.ended();
      return;
    }
    if (this.state === 'wait-open') {
      // A stream error needs a stream: open one to carry it (RFC 6120 §4.9.1.2).
      this.framing.openStream({
        from: this.server.config.domain,
        id: this.newId(),
        version: '1.0',
        xmlns: NS.client,
      });
    }
    if (error) {
      this.server.log.debug('stream error', {
        condition: error,
        text,
        ip: this.ip,
        jid: this.jid?.toString(),
      });
    }
    this.state = 'closed';
    const streamError = error ? streamErrorElement(error, text) : null;
    if (streamError && extra) streamError.cnode(extra);
    this.endStream(streamError);
    this.ended();
  }

  /** The socket is gone. A resumable stream-managed session waits to be resumed; any other ends. */
  private transportLost(): void {
    if (this.state === 'bound' && this.sm?.resumable) {
      this.hibernate();
      return;
    }
    if (!this.sm) this.barrier.end();
    this.ended();
  }

  private hibernate(): void {
    this.hibernating = true;
    const sm = this.sm!;
    this.server.log.info('stream management session hibernating', { jid: this.jid.toString(), timeout: sm.resumeTimeout });
    sm.hibernate(() => this.close('connection-timeout', 'not resumed in time'));
    // What the dead connection carried without an acknowledgement may never have reached the client.
    for (const stanza of sm.unacked) if (stanza.name === 'message') this.held(stanza);
    // A user may leave only so many sessions waiting: the oldest give way.
    const waiting = this.server.smSessions.hibernating(this.account!, this.host!.name);
    const cap = this.server.config.sm.maxHibernatingPerUser;
    for (const old of waiting.slice(0, Math.max(0, waiting.length - cap))) old.close('resource-constraint', 'too many sessions waiting to be resumed');
  }

  /** Sends the end of the stream, after any output still waiting for storage. */
  private endStream(streamError: Element | null): void {
    this.barrier.output(() => {
      if (streamError) this.framing.send(streamError);
      this.framing.closeStream();
      this.barrier.end();
    });
    if (this.barrier.heldCount > 0) setTimeout(() => this.framing.destroy(), CLOSE_WAIT_MS).unref();
  }

  private ended(): void {
    this.outbound.stop();
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.state = 'closed';
    if (this.ending) return;
    this.ending = true;
    this.onEnded(this);
    if (this.jid && this.host) this.server.unbindSession(this, this.host);
    if (this.sm) {
      // Once everything queued for the client was written (or queued here),
      // what it never acknowledged is handed back for delivery.
      const sm = this.sm;
      this.server.smSessions.track(this.barrier.whenSent().then(() => this.redeliver(sm)));
    }
  }

  /** What the client never acknowledged is handed back (hand-back.ts). */
  private async redeliver(sm: StreamManagement): Promise<void> {
    if (sm.id) {
      this.server.smSessions.delete(sm.id, this);
      this.server.cluster?.smEnded(sm.id);
    }
    const stanzas = sm.finish();
    this.barrier.end();
    await handBackUnacknowledged(this.host!, this.server.router, this.jid, { kind: 'c2s', session: this }, stanzas);
    if (stanzas.length) this.server.log.info('unacknowledged stanzas handed back', { jid: this.jid.toString(), count: stanzas.length });
  }

  /**
   * XEP-0198 <enable/>, on the stream or inline (Bind2): returns the
   * <enabled/> or <failed/> to send. From then on the stanzas written to
   * the client are counted and kept until acknowledged.
   */
  enableStreamManagement(enable: Element): Element {
    if (this.state !== 'bound' || this.sm) return failed('unexpected-request');
    const { sm: cfg } = this.server.config;
    const resume = enable.attrs.resume === 'true' || enable.attrs.resume === '1';
    const asked = readH(enable.attrs.max);
    const timeout = asked ? Math.min(asked, cfg.resumeTimeout) : cfg.resumeTimeout;
    const id = resume ? newSmId() : null;
    this.sm = new StreamManagement(this, id, timeout, cfg);
    if (id) {
      this.server.smSessions.add(id, this);
      // In a cluster, the node holding it is recorded, for a resumption on another node.
      this.server.cluster?.smEnabled(id);
    }
    return el('enabled', { xmlns: NS.sm, id: id ?? undefined, resume: id ? 'true' : undefined, max: id ? timeout : undefined });
  }

  /**
   * XEP-0198 <resume/> on this authenticated, unbound stream (or inline in
   * SASL2): returns the <failed/> to send, or null when the old session took
   * this stream's transport over — it then sent `<resumed/>` through
   * `announce` (by default straight on the stream) and resent what the client
   * had not acknowledged; this session is finished.
   */
  async resumeStream(resume: Element, announce?: Announce): Promise<Element | null> {
    if (!this.account || this.state === 'bound' || this.state === 'closed') return failed('unexpected-request');
    const h = readH(resume.attrs.h);
    if (h === null || !resume.attrs.previd) return failed('bad-request');
    const old = this.server.smSessions.get(resume.attrs.previd);
    // Not here: in a cluster, it may be held by another node.
    if (!old && this.server.cluster) return this.resumeFromNode(resume.attrs.previd, h, announce);
    // Another user's session is as unknown as an expired one; so is one another resumption took.
    if (!old || old.account !== this.account || old.host !== this.host || old.state === 'closed' || !old.sm || old.sm.claimed) {
      return failed('item-not-found');
    }
    if (!old.sm.acknowledge(h)) {
      const answer = failed('undefined-condition', old.sm.handled, old.sm.tooHigh(h));
      old.close('undefined-condition', 'a resumption acknowledged stanzas that were never sent');
      return answer;
    }
    // Nothing this stream receives meanwhile may reach the wrong session.
    this.framing.pause?.();
    // While this resumption waits, no other (here or from another node) may take the session.
    const sm = old.sm;
    sm.claimed = true;
    // <resumed h/> counts every stanza the old stream carried, once stored.
    await old.whenDurable();
    sm.claimed = false;
    if ((this.state as State) === 'closed' || (old.state as State) === 'closed') {
      this.framing.resume?.();
      return failed('item-not-found');
    }
    old.takeOver(this.handOver(), announce);
    return null;
  }

  /**
   * XEP-0198 resumption of a session another cluster node holds: that node
   * hands it over (cluster.ts `requestHandover`) and it continues here as
   * this session — same full JID, same session id, the counters, presence
   * and session data it had, and the stanzas the client has not
   * acknowledged resent. Unknown there, or that node not answering within
   * cluster.nodeTimeout: item-not-found (the client binds anew; what the
   * old session held is stored or bounced where it is).
   */
  private async resumeFromNode(previd: string, h: number, announce?: Announce): Promise<Element | null> {
    const cluster = this.server.cluster!;
    this.framing.pause?.();
    const answer = await cluster.requestHandover(previd, `${this.account}@${this.host!.name}`, h);
    if (!answer.st) {
      this.framing.resume?.();
      if (answer.f === 'too-high') {
        return failed('undefined-condition', answer.h, el('handled-count-too-high', { xmlns: NS.sm, h, 'send-count': answer.sent }));
      }
      return failed('item-not-found');
    }
    if (this.state !== 'negotiating') {
      // This connection went (or bound) while the other node answered: the session ends here instead.
      cluster.orphaned(answer.st);
      return failed('item-not-found');
    }
    this.adopt(answer.st, announce);
    return null;
  }

  /** Continues a session handed over by another cluster node on this stream. */
  private adopt(st: HandoverState, announce?: Announce): void {
    const host = this.host!;
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.jid = Jid.parse(st.j);
    this.id = st.s;
    // Set before binding, so the other nodes' first view of the session has them (no presence flap).
    this.presence = st.p === null ? null : parse(st.p);
    this.priority = st.pr;
    this.rosterRequested = st.rr;
    for (const [k, v] of st.d) this.data.set(k, decodeValue(v));
    const sm = StreamManagement.restore(this, st.id, st.to, this.server.config.sm, {
      handled: st.hi,
      sent: st.so,
      acked: st.ak,
      unacked: st.u.map((x) => parse(x)),
    });
    this.sm = sm;
    this.server.smSessions.add(st.id, this);
    this.state = 'bound';
    this.server.cluster!.adopt(this, st.b, st.id);
    this.server.bindSession(this, host);
    const resumed = el('resumed', { xmlns: NS.sm, previd: st.id, h: st.hi });
    if (announce) announce(resumed, this);
    else this.framing.send(resumed);
    sm.wake();
    this.csi.setActive();
    this.framing.resume?.();
    this.server.log.info('stream management session resumed from another node', { jid: st.j, ip: this.ip, resent: sm.unacked.length });
    // After <resumed/>: what a new home node of the user builds (contacts re-probed) may reach the client.
    this.server.cluster!.resumedHere(this);
  }

  /**
   * Another cluster node resumes this session (cluster.ts, `takeover`):
   * it leaves this node without ending — no unavailable presence, nothing
   * stored offline — and its state goes to that node. The old connection,
   * if its loss was not noticed yet, is closed with a conflict. `bare` is
   * the resuming user, `h` the client's count on <resume/>, `to` the
   * instance of the node it moves to.
   */
  async moveToNode(bare: string, h: number, to: string): Promise<{ st?: HandoverState; f?: 'item-not-found' | 'too-high'; h?: number; sent?: number }> {
    const sm = this.sm;
    if (!sm?.id || this.state !== 'bound' || sm.claimed || `${this.account}@${this.host!.name}` !== bare) return { f: 'item-not-found' };
    if (!sm.acknowledge(h)) {
      const answer = { f: 'too-high' as const, h: sm.handled, sent: sm.counters.sent };
      this.close('undefined-condition', 'a resumption acknowledged stanzas that were never sent');
      return answer;
    }
    sm.claimed = true;
    if (!this.hibernating) {
      this.dropTransport('the session was resumed on another connection');
      this.hibernating = true;
      // Like any session without a connection, it expires if this move never completes.
      sm.hibernate(() => this.close('connection-timeout', 'not resumed in time'));
    }
    // Its h counts what the client sent once stored; output held for that, or while the
    // client was inactive (XEP-0352), joins the unacknowledged stanzas.
    await this.whenDurable();
    this.csi.setActive();
    await this.barrier.whenSent();
    if ((this.state as State) === 'closed') return { f: 'item-not-found' };
    const bindOrder = this.server.cluster?.bindOrder(this) ?? 0;
    const timeout = sm.resumeTimeout;
    const handled = sm.handled;
    const { sent, acked } = sm.counters;
    // Output queued since and still held for storage goes along as unacknowledged, not dropped by end().
    for (const item of this.barrier.takeHeld()) if (typeof item !== 'function') this.deliver(item);
    const unacked = sm.finish();
    const data: Array<[string, unknown]> = [];
    for (const [k, v] of this.data) if (v !== undefined) data.push([k, encodeValue(v)]);
    const st: HandoverState = {
      j: this.jid.toString(),
      s: this.id,
      b: bindOrder,
      id: sm.id!,
      to: timeout,
      hi: handled,
      so: sent,
      ak: acked,
      u: unacked.map((x) => x.toString()),
      p: this.presence ? this.presence.toString() : null,
      pr: this.priority,
      rr: this.rosterRequested,
      d: data,
    };
    // Gone from here quietly: no resource-unbind (contacts would see it go), nothing handed back.
    this.state = 'closed';
    this.ending = true;
    this.outbound.stop();
    this.onEnded(this);
    this.server.smSessions.delete(sm.id!, this);
    this.barrier.end();
    // In this same turn it leaves the registry and is routed to `to` instead: no stanza for it
    // finds it missing. Nobody is told it ended (it did not): the handover tells every node it moved.
    if (this.server.cluster) this.server.cluster.movedOut(this, st, to);
    else this.server.sessions.remove(this);
    this.server.log.info('stream management session moved to another node', { jid: st.j, unacked: unacked.length });
    return { st };
  }

  /** Lets go of a connection that is still open, telling the client why. */
  private dropTransport(why: string): void {
    const old = this.framing;
    old.setHandlers({ open() {}, stanza() {}, close() {}, error() {}, end() {} });
    old.send(streamErrorElement('conflict', why));
    old.closeStream();
  }

  /** Gives up this stream's transport to a session being resumed. */
  private handOver(): Framing {
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.state = 'closed';
    this.ending = true;
    this.onEnded(this);
    this.barrier.end();
    return this.framing;
  }

  /** Continues this (resumed) session on another connection's transport. */
  private takeOver(framing: Framing, announce?: Announce): void {
    const sm = this.sm!;
    // The old connection is still open (its loss not yet noticed): it goes, the session stays.
    if (!this.hibernating) this.dropTransport('the session was resumed on another connection');
    this.framing = framing;
    this.attach(framing);
    this.hibernating = false;
    const resumed = el('resumed', { xmlns: NS.sm, previd: sm.id!, h: sm.handled });
    if (announce) announce(resumed, this);
    else framing.send(resumed);
    sm.wake();
    // A resumed stream starts active (XEP-0352 §6).
    this.csi.setActive();
    framing.resume?.();
    this.server.log.info('stream management session resumed', { jid: this.jid.toString(), ip: this.ip, resent: sm.unacked.length });
  }
  private ending = false;

  private newId(): string {
    return randomBytes(12).toString('hex');
  }

  private onOpen(attrs: Record<string, string>, name: string): void {
    if (this.state === 'closed') return;
    const domain = this.server.config.domain;
    const id = this.newId();
    if (name !== 'stream:stream' || attrs['xmlns:stream'] !== NS.stream) {
      // WsFraming reports only an <open/> in the framing namespace (RFC 7395) as 'open'.
      if (name !== 'open' || this.framing.transport !== 'websocket') {
        this.framing.openStream({ from: domain, id, version: '1.0', xmlns: NS.client });
        this.state = 'negotiating';
        this.close('invalid-namespace', 'expected a stream:stream element');
        return;
      }
    }
    if (this.framing.transport === 'tcp' && attrs.xmlns !== NS.client) {
      this.framing.openStream({ from: domain, id, version: '1.0', xmlns: NS.client });
      this.state = 'negotiating';
      this.close('invalid-namespace', 'this port serves jabber:client streams');
      return;
    }
    const to = attrs.to ? Jid.tryParse(attrs.to) : null;
    const host = to ? this.server.hosts.get(to.domain) : undefined;
    this.framing.openStream({ from: host?.name ?? domain, id, version: '1.0', xmlns: NS.client });
    this.state = 'negotiating';
    if (!host?.userHost || !to || to.local || to.resource) {
      this.close('host-unknown', `this server does not serve ${attrs.to ?? '(no to)'}`);
      return;
    }
    if (!attrs.version || !/^1\.\d+$/.test(attrs.version)) {
      this.close('unsupported-version', 'XMPP 1.0 streams only');
      return;
    }
    if (this.host && this.host !== host) {
      this.close('host-unknown', 'domain changed during negotiation');
      return;
    }
    this.host = host;
    // A plain WebSocket cannot start TLS: with nothing it may do before
    // authentication, it is told where to connect instead of being left
    // with empty features.
    if (this.server.config.c2s.requireTls && !this.framing.secure && !this.framing.canStartTls) {
      const where = this.framing.secureAlternative ?? 'the wss:// address';
      this.close('policy-violation', `this server accepts logins only over TLS: connect to ${where}`);
      return;
    }
    this.framing.send(this.features(host));
  }

  private features(host: Host): Element {
    const f = el('stream:features');
    const secure = this.framing.secure;
    const tlsRequired = this.server.config.c2s.requireTls && !secure;
    if (!this.authenticated) {
      if (this.framing.canStartTls) {
        f.cnode(el('starttls', { xmlns: NS.tls }, tlsRequired ? el('required') : null));
      }
      if (!tlsRequired) {
        const mechs = el('mechanisms', { xmlns: NS.sasl });
        const legacyPlus = this.server.config.c2s.legacySaslPlus;
        for (const m of offeredMechanisms(secure, this.binding, legacyPlus)) mechs.cnode(el('mechanism', null, m));
        f.cnode(mechs);
        const sasl2 = Sasl2.feature(this.server, host, secure, this.binding, true);
        if (sasl2) f.cnode(sasl2);
        // XEP-0440: the binding types, wherever a -PLUS mechanism is offered.
        const cb = sasl2 || legacyPlus ? channelBindingFeature(this.binding) : null;
        if (cb) f.cnode(cb);
      }
    } else if (this.state === 'bound') {
      // Bound inline by Bind2 (XEP-0386): what is left to negotiate on the session.
      if (!this.sm) f.cnode(el('sm', { xmlns: NS.sm }));
      f.cnode(el('csi', { xmlns: NS.csi }));
    } else {
      f.cnode(el('bind', { xmlns: NS.bind }));
      f.cnode(el('session', { xmlns: NS.session }, el('optional')));
      f.cnode(el('sm', { xmlns: NS.sm }));
      f.cnode(el('csi', { xmlns: NS.csi }));
    }
    const event = {
      session: { secure, authenticated: this.authenticated, ip: this.ip },
      features: [] as Element[],
      host,
    };
    host.featureEvents.fire('stream-features', event);
    for (const extra of event.features) {
      if (!tlsRequired || this.authenticated) f.cnode(extra);
    }
    return f;
  }

  /** XEP-0198 and XEP-0352 elements on a bound stream. */
  private onNonza(nonza: Element): void {
    if (nonza.attrs.xmlns === NS.csi) {
      if (nonza.name === 'inactive') this.csi.setInactive();
      else if (nonza.name === 'active') this.csi.setActive();
      else this.close('unsupported-stanza-type', `<${nonza.name}/> is not a client state`);
      return;
    }
    const sm = this.sm;
    switch (nonza.name) {
      case 'enable':
        if (sm) {
          // XEP-0198 §3: one attempt only.
          this.close('policy-violation', 'stream management is already enabled');
          return;
        }
        this.writeNonza(this.enableStreamManagement(nonza));
        return;
      case 'r':
        if (sm) sm.onRequest();
        else this.writeNonza(failed('unexpected-request'));
        return;
      case 'a':
        if (sm) sm.onAck(nonza);
        else this.writeNonza(failed('unexpected-request'));
        return;
      case 'resume':
        // The session is bound already: resumption is for a new stream.
        this.writeNonza(failed('unexpected-request'));
        return;
      default:
        this.close('unsupported-stanza-type', `<${nonza.name}/> is not a stream management element`);
    }
  }

  private onClientClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.endStream(null);
    this.ended();
  }

  private onStanza(stanza: Element): void {
    if (this.state === 'closed') return;
    if (this.state === 'wait-open') {
      this.close('not-well-formed', 'stanza before stream header');
      return;
    }
    const ns = stanza.attrs.xmlns;
    if (this.state === 'bound') {
      // Stream-level elements (XEP-0198, XEP-0352) are not stanzas: not numbered, not routed.
      if (ns === NS.sm || ns === NS.csi) return this.onNonza(stanza);
      // Storage work its handling starts holds later output (durability barrier).
      this.barrier.run(this, () => this.routeStanza(stanza));
      return;
    }
    if (ns === NS.sm && this.authenticated) {
      if (stanza.name === 'resume') {
        this.resumeStream(stanza).then(
          (answer) => answer && this.framing.send(answer),
          (err) => {
            this.server.log.error('resumption failed', { error: String((err as Error)?.stack ?? err) });
            this.framing.send(failed('internal-server-error'));
          },
        );
      } else {
        // <enable/> before binding (XEP-0198 §3), <r/> or <a/> without SM.
        this.framing.send(failed('unexpected-request'));
      }
      return;
    }
    if (stanza.name === 'starttls' && ns === NS.tls) {
      this.startTls();
      return;
    }
    if (ns === NS.sasl2) {
      this.onSasl2(stanza);
      return;
    }
    if (stanza.name === 'auth' || stanza.name === 'response' || stanza.name === 'abort') {
      if (ns !== NS.sasl) {
        this.close('invalid-namespace');
        return;
      }
      this.onSasl(stanza);
      return;
    }
    if (stanza.name === 'iq' && this.authenticated) {
      this.onNegotiationIq(stanza);
      return;
    }
    if (stanza.name === 'iq' && !this.authenticated && this.host) {
      // Pre-authentication iqs: only in-band registration may use them.
      if (this.server.config.c2s.requireTls && !this.secure) {
        this.close('policy-violation', 'STARTTLS first');
        return;
      }
      // Results and errors answer nothing we asked; a malformed iq gets
      // bad-request (without its payload: it may hold a password).
      if (stanza.attrs.type === 'result' || stanza.attrs.type === 'error') return;
      // Errors here never echo the request: a registration form holds a password.
      const fail = (condition: StanzaErrorCondition, text?: string, type?: ErrorType) =>
        this.send(el('iq', { type: 'error', id: stanza.attrs.id }, errorElement(condition, text, type)));
      const malformed = checkStanzaShape(stanza);
      if (malformed) {
        fail(malformed.condition, malformed.text, malformed.type);
        return;
      }
      const payload = firstChild(stanza);
      const key = `unauthenticated-iq/${payload?.getNS()}:${payload?.getName()}`;
      const host = this.host;
      const handled = this.barrier.run(this, () => host.events.fire(key, {
        stanza,
        origin: { kind: 'unauthenticated', ip: this.ip },
        host,
        to: Jid.of('', host.name),
        from: Jid.of('', host.name),
      }));
      if (handled instanceof Promise) {
        handled.then(
          (reply) => reply && this.send(reply as Element),
          (err) => {
            this.server.log.error('handler failed', {
              stanza: 'iq',
              error: String((err as Error)?.stack ?? err),
            });
            fail('internal-server-error');
          },
        );
        return;
      }
      if (!handled) fail('service-unavailable');
      return;
    }
    this.close('not-authorized', 'authenticate and bind a resource first');
  }

  /** XEP-0388 elements: offered only with TLS, and only once per stream. */
  private onSasl2(element: Element): void {
    if (this.authenticated && !this.sasl2) {
      this.close('policy-violation', 'already authenticated');
      return;
    }
    if (!this.server.config.sasl2.enabled) {
      this.close('unsupported-feature', 'SASL2 is not offered here');
      return;
    }
    if (!this.secure) {
      this.framing.send(el('failure', { xmlns: NS.sasl2 }, el('encryption-required', { xmlns: NS.sasl })));
      return;
    }
    this.sasl2 ??= new Sasl2(this, this.server, this.host!);
    this.sasl2.onElement(element);
  }

  // ---- what SASL2 (sasl2.ts) uses of the stream ----

  writeNegotiation(element: Element): void {
    this.framing.send(element);
  }

  authFailed(): void {
    this.authFailures++;
    if (this.authFailures >= this.server.config.limits.maxAuthFailures) {
      this.close('policy-violation', 'too many failed authentication attempts');
    }
  }

  authenticatedAs(user: string): void {
    this.account = user;
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.server.log.info('authenticated', { user: `${user}@${this.host!.name}`, ip: this.ip, sasl: 2 });
    // No stream restart with SASL2: the authenticated stream's limits apply from here.
    this.framing.setLimits(this.server.parserLimits);
  }

  streamFeatures(): Element {
    return this.features(this.host!);
  }

  bindInline(resource: string, announce: (jid: Jid) => void): Jid {
    const jid = Jid.of(this.account!, this.host!.name, resource);
    this.jid = jid;
    this.state = 'bound';
    announce(jid);
    if (this.state === 'bound') this.server.bindSession(this, this.host!);
    return jid;
  }

  resumeInline(resume: Element, announce: (resumed: Element, jid: Jid, features: Element) => void): Promise<Element | null> {
    // The resumed session: the old one here, or this one continuing a session from another node.
    return this.resumeStream(resume, (resumed, session) => announce(resumed, session.jid, session.features(session.host!)));
  }

  setClientState(active: boolean): void {
    if (active) this.csi.setActive();
    else this.csi.setInactive();
  }

  private startTls(): void {
    if (!answerStartTls(this.framing, this.server.log)) {
      this.close();
      return;
    }
    this.state = 'wait-open';
  }


  private onSasl(stanza: Element): void {
    if (this.authenticated || this.sasl2) {
      this.close('policy-violation', 'already authenticated');
      return;
    }
    if (this.server.config.c2s.requireTls && !this.secure) {
      this.framing.send(el('failure', { xmlns: NS.sasl }, el('encryption-required')));
      return;
    }
    if (this.saslBusy) {
      this.close('policy-violation', 'SASL step while one is pending');
      return;
    }
    if (stanza.name === 'abort') {
      this.sasl = null;
      this.saslFailure('aborted');
      return;
    }
    let exchange = this.sasl;
    if (stanza.name === 'auth') {
      exchange = createExchange(stanza.attrs.mechanism ?? '', {
        domain: this.host!.name,
        secure: this.secure,
        accounts: this.server.accounts,
        ip: this.ip,
        throttle: this.server.authThrottle,
        log: this.server.log,
        decoySecret: this.server.serverSecret,
        binding: this.binding,
        sasl2: false,
        plus: this.server.config.c2s.legacySaslPlus,
      });
      if (!exchange) {
        this.saslFailure('invalid-mechanism');
        return;
      }
      this.sasl = exchange;
    } else if (!exchange) {
      this.saslFailure('malformed-request');
      return;
    }
    const text = stanza.getText().trim();
    let data: Buffer;
    if (text === '=' || text === '') data = Buffer.alloc(0);
    else if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) data = Buffer.from(text, 'base64');
    else {
      this.saslFailure('incorrect-encoding');
      return;
    }
    this.saslBusy = true;
    exchange.step(data).then(
      (step) => {
        this.saslBusy = false;
        this.onSaslStep(step);
      },
      (err) => {
        this.saslBusy = false;
        this.server.log.error('SASL error', { error: String(err) });
        this.saslFailure('temporary-auth-failure');
      },
    );
  }

  private onSaslStep(step: SaslStep): void {
    if (this.state === 'closed') return;
    if (step.kind === 'challenge') {
      this.framing.send(el('challenge', { xmlns: NS.sasl }, Buffer.from(step.data).toString('base64')));
    } else if (step.kind === 'failure') {
      this.saslFailure(step.condition, step.text);
    } else {
      this.sasl = null;
      this.account = step.user;
      if (this.authTimer) clearTimeout(this.authTimer);
      this.authTimer = null;
      this.server.log.info('authenticated', { user: `${step.user}@${this.host!.name}`, ip: this.ip });
      this.framing.send(
        el('success', { xmlns: NS.sasl }, step.data ? Buffer.from(step.data).toString('base64') : null),
      );
      this.state = 'wait-open';
      this.framing.setLimits(this.server.parserLimits);
      this.framing.restart();
    }
  }

  private saslFailure(condition: string, text?: string): void {
    this.sasl = null;
    this.framing.send(el('failure', { xmlns: NS.sasl }, el(condition), text ? el('text', null, text) : null));
    if (condition === 'aborted') return;
    this.authFailed();
  }

  /** Resource binding and the legacy session iq, after SASL. */
  private onNegotiationIq(stanza: Element): void {
    const payload = firstChild(stanza);
    if (stanza.attrs.type === 'set' && payload?.is('bind', NS.bind)) {
      this.bind(stanza, payload);
      return;
    }
    if (stanza.attrs.type === 'set' && payload?.is('session', NS.session)) {
      this.send(el('iq', { type: 'result', id: stanza.attrs.id }));
      return;
    }
    this.close('not-authorized', 'bind a resource first');
  }

  private bind(stanza: Element, payload: Element): void {
    const requested = payload.getChildText('resource')?.trim();
    const resource = requested || randomBytes(6).toString('hex');
    let jid: Jid;
    try {
      jid = Jid.of(this.account!, this.host!.name, resource);
    } catch (err) {
      if (err instanceof JidError) {
        this.send(errorReply(stanza, 'bad-request', err.message));
        return;
      }
      throw err;
    }
    this.jid = jid;
    this.state = 'bound';
    this.server.bindSession(this, this.host!);
    this.send(
      el(
        'iq',
        { type: 'result', id: stanza.attrs.id },
        el('bind', { xmlns: NS.bind }, el('jid', null, jid.toString())),
      ),
    );
  }

  private routeStanza(stanza: Element): void {
    const name = stanza.name;
    if (name !== 'message' && name !== 'presence' && name !== 'iq') {
      this.close('unsupported-stanza-type', `<${name}/> is not a stanza`);
      return;
    }
    // Stanzas carry the stream's namespace implicitly; an explicit other one is wrong.
    if (stanza.attrs.xmlns && stanza.attrs.xmlns !== NS.client) {
      this.close('invalid-namespace', 'stanzas must be in jabber:client');
      return;
    }
    delete stanza.attrs.xmlns;
    if (name === 'iq' && stanza.attrs.type === 'set' && firstChild(stanza)?.is('session', NS.session)) {
      this.send(el('iq', { type: 'result', id: stanza.attrs.id }));
      return;
    }
    this.server.router.fromClient(this, stanza);
  }
}

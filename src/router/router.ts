// Every stanza passes here. Stanzas from local clients are stamped with the
// sender's JID and offered to the sender's host as `pre-<kind>/<type>` events
// (outbound processing: roster subscriptions, carbons, blocking...); then
// they are delivered: to a hosted domain as `<kind>/<type>` events, or to a
// remote server over s2s. What no module handles gets the default behaviour
// here, in one place: direct delivery to a bound full JID, and
// `service-unavailable` for unhandled iq get/set.
import type { Host, StanzaEvent } from '../host/host.ts';
import type { ClientSession, Origin } from '../host/session.ts';
import { Jid } from '../jid/jid.ts';
import type { Logger } from '../log.ts';
import type { Element } from '../xml/element.ts';
import { errorReply, StanzaError, type StanzaErrorCondition } from '../xml/errors.ts';
import { checkStanzaShape } from './stanza-check.ts';
import type { SessionRegistry } from './session-registry.ts';

/** Outgoing server-to-server delivery; set by the s2s manager when enabled. */
export interface RemoteRoute {
  send(stanza: Element, toDomain: string, fromDomain: string): void;
}

/**
 * Cluster mode: decides whether a stanza for a hosted domain is handled on
 * another node (cluster/routing.ts); null in a single process.
 */
export interface ClusterRoute {
  /** True when it sent the stanza to another node; false: handle it here. */
  forward(stanza: Element, origin: Origin, to: Jid, from: Jid, host: Host, hops: number): boolean;
}

export type Destination = 'self' | 'bare' | 'full' | 'host';

export class Router {
  remote: RemoteRoute | null = null;
  /** Set while this process is a node of a cluster. */
  cluster: ClusterRoute | null = null;
  /**
   * In cluster mode, what a module does when this node takes over a
   * claimed key (e.g. `room:` + a room's JID, when the room's node died or
   * this node is the first to serve it), by key prefix: stanzas for the key
   * wait until the returned promise settles. Unused in a single process.
   */
  readonly claimHooks = new Map<string, (key: string) => Promise<void> | void>();

  constructor(
    private readonly hosts: Map<string, Host>,
    private readonly sessions: SessionRegistry,
    private readonly log: Logger,
  ) {}

  /** Entry point for a stanza from a bound local client session. */
  fromClient(session: ClientSession, stanza: Element): void {
    // The server always says who sent it: a client cannot spoof another JID.
    stanza.attrs.from = session.jid.toString();
    // Missing id, unknown type, no or several iq payloads: bad-request, before any module.
    const malformed = checkStanzaShape(stanza);
    if (malformed) return this.bounce(stanza, malformed);
    let to: Jid;
    // `to=''` is an invalid JID, not a missing one (it must not mean "to myself").
    const implicit = stanza.attrs.to === undefined;
    if (!implicit) {
      const parsed = Jid.tryParse(stanza.attrs.to);
      if (!parsed) return this.bounce(stanza, 'jid-malformed');
      to = parsed;
    } else {
      to = session.jid.toBare();
    }
    const host = this.hosts.get(session.jid.domain)!;
    const type = destinationOf(session.jid, to, implicit);
    const event: StanzaEvent = { stanza, origin: { kind: 'c2s', session }, host, to, from: session.jid };
    if (this.fire(host, `pre-${stanza.name}/${type}`, event)) return;
    this.deliver(stanza, { kind: 'c2s', session }, to, session.jid);
  }

  /**
   * Sends a stanza as a local user (`from` a bare or full JID of a user
   * host) without a client stream of theirs, e.g. a privileged component's
   * message on the user's behalf: the user's host sees it as
   * `pre-<kind>/<type>` first, exactly like the user's own clients' stanzas
   * (their archive, carbons), then it is delivered.
   */
  asUser(stanza: Element, origin: Origin): void {
    const from = Jid.tryParse(stanza.attrs.from);
    const to = Jid.tryParse(stanza.attrs.to);
    const host = from ? this.hosts.get(from.domain) : undefined;
    if (!from || !host?.userHost) {
      this.log.warn('dropping a stanza sent as a user of no local host', { name: stanza.name, from: stanza.attrs.from });
      return;
    }
    if (!to) return this.bounce(stanza, 'jid-malformed');
    const event: StanzaEvent = { stanza, origin, host, to, from };
    if (this.fire(host, `pre-${stanza.name}/${destinationOf(from, to, false)}`, event)) return;
    this.deliver(stanza, origin, to, from);
  }

  /**
   * Routes a stanza that already carries a trusted `from` (from a module, a
   * hosted component, an XEP-0114 component or an authenticated s2s link).
   */
  route(stanza: Element, origin: Origin = { kind: 'server' }): void {
    const from = Jid.tryParse(stanza.attrs.from);
    const to = Jid.tryParse(stanza.attrs.to);
    if (!from) {
      this.log.warn('dropping stanza without a valid from', { name: stanza.name, to: stanza.attrs.to });
      return;
    }
    if (!to) return this.bounce(stanza, 'jid-malformed');
    // Other servers' and components' stanzas get the same shape rules as our clients' (ours are built right).
    if (origin.kind === 's2s' || origin.kind === 'component') {
      const malformed = checkStanzaShape(stanza);
      if (malformed) return this.bounce(stanza, malformed);
    }
    this.deliver(stanza, origin, to, from);
  }

  /**
   * A stanza another cluster node sent here to be handled (this node is its
   * recipient's home, or holds its room): delivered as if routed here, and
   * forwarded again only while the nodes' views settle (`final` stops that).
   */
  deliverHere(stanza: Element, origin: Origin, final: boolean, hops: number): void {
    const from = Jid.tryParse(stanza.attrs.from);
    // A client's stanza without `to` (an iq to its own account) means its bare JID, as in fromClient.
    const to = stanza.attrs.to === undefined && origin.kind === 'c2s' ? origin.session.jid.toBare() : Jid.tryParse(stanza.attrs.to);
    if (!from || !to) return;
    this.deliver(stanza, origin, to, from, final ? -1 : hops);
  }

  /** `hops`: cluster forwards so far, -1 when it must be handled here. */
  private deliver(stanza: Element, origin: Origin, to: Jid, from: Jid, hops = 0): void {
    const host = this.hosts.get(to.domain);
    if (!host) {
      if (this.remote && origin.kind !== 's2s') {
        this.remote.send(stanza, to.domain, from.domain);
      } else {
        this.bounce(stanza, 'remote-server-not-found');
      }
      return;
    }
    if (this.cluster !== null && hops >= 0 && this.cluster.forward(stanza, origin, to, from, host, hops)) return;
    const isSelf = origin.kind === 'c2s' && origin.session.jid.bare === to.bare;
    const type: Destination = to.local === '' ? 'host' : to.resource === '' ? (isSelf ? 'self' : 'bare') : 'full';
    const event: StanzaEvent = { stanza, origin, host, to, from };
    if (this.fire(host, `${stanza.name}/${type}`, event)) return;
    if (type === 'self' && this.fire(host, `${stanza.name}/bare`, event)) return;
    this.fallback(event, type);
  }

  /**
   * Fires an event. A handler that throws synchronously is treated like one
   * that rejected: the sender gets the error, the stanza counts as handled.
   * Without this the exception would unwind into the stream parser and end
   * the sender's stream with a misleading not-well-formed error.
   */
  private fire(host: Host, name: string, event: StanzaEvent): boolean {
    try {
      return this.fireUnguarded(host, name, event);
    } catch (err) {
      this.replyError(event.stanza, err);
      return true;
    }
  }

  // iq get/set reach their payload-specific events through the generic one
  // (host/iq-dispatch.ts), so filters on the generic event see every iq.
  private fireUnguarded(host: Host, name: string, event: StanzaEvent): boolean {
    return this.settle(host.events.fire(name, event), event.stanza);
  }

  /** Turns a handler result into "handled", replying with errors it raised. */
  private settle(result: true | false | Promise<unknown>, stanza: Element): boolean {
    if (result instanceof Promise) {
      result.catch((err) => this.replyError(stanza, err));
      return true;
    }
    return result;
  }

  /** Sends the error reply for a failed handler (never for error stanzas). */
  replyError(stanza: Element, err: unknown): void {
    if (err instanceof StanzaError) return this.bounce(stanza, err);
    this.log.error('handler failed', { stanza: stanza.name, error: String((err as Error)?.stack ?? err) });
    this.bounce(stanza, 'internal-server-error');
  }

  /** Replies to a stanza with an error, unless it is itself an error. */
  bounce(stanza: Element, err: StanzaError | StanzaErrorCondition, text?: string): void {
    if (stanza.attrs.type === 'error' || stanza.attrs.type === 'result') return;
    if (!stanza.attrs.from) return;
    const reply = errorReply(stanza, err, text);
    if (!reply.attrs.from) delete reply.attrs.from;
    // Errors about our own domains come from the domain the sender addressed.
    const to = Jid.tryParse(stanza.attrs.to);
    if (!to && reply.attrs.from) delete reply.attrs.from;
    if (!reply.attrs.from) {
      // No usable address to answer from: our sender's own domain, or, for
      // another server's sender (whose domain we must not claim), ours.
      const sender = Jid.tryParse(stanza.attrs.from);
      if (sender) reply.attrs.from = this.hosts.has(sender.domain) ? sender.domain : (this.hosts.keys().next().value ?? sender.domain);
    }
    this.route(reply);
  }

  private fallback(event: StanzaEvent, type: Destination): void {
    const { stanza, to } = event;
    const kind = stanza.name;
    if (type === 'full') {
      const session = this.sessions.get(to);
      if (session) return session.send(stanza);
    }
    if (kind === 'iq') {
      if (stanza.attrs.type === 'get' || stanza.attrs.type === 'set') this.bounce(stanza, 'service-unavailable');
      return;
    }
    if (kind === 'message' && stanza.attrs.type !== 'groupchat' && stanza.attrs.type !== 'headline') {
      this.bounce(stanza, 'service-unavailable');
    }
    // Presence nobody wants is dropped silently (RFC 6121 §4.3, §4.5).
  }
}

function destinationOf(sender: Jid, to: Jid, implicit: boolean): Destination {
  if (implicit || (to.resource === '' && to.bare === sender.bare)) return 'self';
  if (to.local === '') return 'host';
  return to.resource === '' ? 'bare' : 'full';
}

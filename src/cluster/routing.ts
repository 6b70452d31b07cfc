// Where a stanza is handled in a cluster. The router asks before it fires
// a host's events (router.ts `deliver`); the answer is "here" or "on that
// node", and the stanza goes there whole, with where it came from.
//
// - To a user of this server: on the user's home node, the node of their
//   oldest bound session, so what a module keeps in memory per user (caps
//   of contacts, avatar hashes, the order of their roster changes) lives in
//   one place. A full JID goes to the node holding that session. A user
//   with no session anywhere is handled on one node chosen by rendezvous
//   hashing of the bare JID over the members (their roster and offline
//   messages change in one place at a time); presence that is not about
//   subscriptions is dropped or answered locally instead (no hop for a
//   broadcast to offline contacts).
// - To the MSN transport: on the home node of the sending user (local
//   users) or by rendezvous of the sender (remote users), so each user's
//   MSN session lives on one node and all their stanzas reach it.
// - To a MUC room: on the node that claimed the room in Redis (the first
//   to need it; a dead node's rooms are claimed again by the next stanza).
// - To an XEP-0114 component: on the node its link is connected to.
// - Anything else (the domains themselves, uploads): here.
import type { Host } from '../host/host.ts';
import type { ClientSession, Origin } from '../host/session.ts';
import type { Jid } from '../jid/jid.ts';
import type { ClusterRoute } from '../router/router.ts';
import type { Server } from '../server.ts';
import type { Element } from '../xml/element.ts';
import type { Cluster } from './cluster.ts';
import { RemoteSession } from './remote-session.ts';

const SUBSCRIPTION_TYPES = new Set(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']);

export class ClusterRouting implements ClusterRoute {
  /** Claim key → owning instance, as last learned. */
  private readonly owners = new Map<string, string>();
  /** Stanzas waiting for a claim lookup, per key (their order is kept). */
  private readonly waiting = new Map<string, Array<() => void>>();
  /** Claims this node acquired: callbacks that refresh what they cover (a room reloaded from storage). */

  constructor(
    private readonly server: Server,
    private readonly cluster: Cluster,
  ) {}

  /** Forgets what a dead instance owned. */
  forgetOwner(inst: string): void {
    for (const [k, o] of this.owners) if (o === inst) this.owners.delete(k);
  }

  /** Whether the stanza was sent to another node (true) or is handled here (false). */
  forward(stanza: Element, origin: Origin, to: Jid, from: Jid, host: Host, hops: number): boolean {
    const { config } = this.server;
    if (host.userHost) {
      if (to.local === '') return false;
      if (to.resource !== '') {
        const s = this.server.sessions.get(to);
        if (s) return this.to(this.cluster.instanceOf(s), stanza, origin, hops);
      }
      const home = this.homeOf(to.bare);
      if (home !== null) return this.to(home, stanza, origin, hops);
      if (stanza.name === 'presence' && !SUBSCRIPTION_TYPES.has(stanza.attrs.type ?? '')) return false;
      return this.to(this.rendezvous(to.bare), stanza, origin, hops);
    }
    if (host.name === config.msn.domain) {
      const local = this.server.hosts.get(from.domain)?.userHost === true;
      const home = local ? this.homeOf(from.bare) : null;
      return this.to(home ?? this.rendezvous(from.bare), stanza, origin, hops);
    }
    if (config.muc.enabled && host.name === config.muc.domain && to.local !== '') {
      return this.viaClaim(`room:${to.bare}`, true, stanza, origin, hops);
    }
    if (host.name in config.components) return this.viaClaim(`component:${host.name}`, false, stanza, origin, hops);
    return false;
  }

  private to(inst: string, stanza: Element, origin: Origin, hops: number): boolean {
    if (inst === this.cluster.instance) return false;
    this.cluster.forward(inst, stanza, origin, hops);
    return true;
  }

  /** The instance of the user's oldest bound session, or null when they have none. */
  homeOf(bare: string): string | null {
    if (!this.server.sessions.has(bare)) return null;
    let oldest: ClientSession | null = null;
    let order = Number.POSITIVE_INFINITY;
    for (const s of this.server.sessions.resources(bare)) {
      const o = this.cluster.bindOrder(s);
      if (o < order) {
        order = o;
        oldest = s;
      }
    }
    return oldest ? this.cluster.instanceOf(oldest) : null;
  }

  /** The member with the highest hash of (member, key): every node agrees while they agree on the members. */
  rendezvous(key: string): string {
    let best = this.cluster.instance;
    let bestScore = -1;
    for (const inst of this.cluster.members) {
      const score = fnv1a(`${inst}\n${key}`);
      if (score > bestScore || (score === bestScore && inst < best)) {
        best = inst;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * Handles the stanza where `key` is claimed: at once when the owner is
   * known, else after asking Redis (in order with other stanzas for the
   * same key). With `take`, this node claims what nobody holds.
   */
  private viaClaim(key: string, take: boolean, stanza: Element, origin: Origin, hops: number): boolean {
    // A room stays where it was claimed while that node lives; a component's link may move at any time: asked each time.
    const owner = take ? this.owners.get(key) : undefined;
    if (owner !== undefined && this.cluster.members.has(owner)) return this.to(owner, stanza, origin, hops);
    const deliver = () => {
      const o = this.owners.get(key);
      if (o === undefined || o === this.cluster.instance) this.server.router.deliverHere(stanza, origin, true, hops);
      else this.cluster.forward(o, stanza, origin, hops);
    };
    let queue = this.waiting.get(key);
    if (queue) {
      queue.push(deliver);
      return true;
    }
    queue = [deliver];
    this.waiting.set(key, queue);
    void this.cluster.claim(key, take).then(
      (o) => this.resolved(key, o),
      (err) => {
        this.cluster.log.warn('claim lookup failed: handling here', { key, error: String(err) });
        this.resolved(key, null);
      },
    );
    return true;
  }

  private resolved(key: string, owner: string | null): void {
    const finish = () => {
      if (owner) this.owners.set(key, owner);
      else this.owners.delete(key);
      const queue = this.waiting.get(key) ?? [];
      this.waiting.delete(key);
      for (const deliver of queue) deliver();
    };
    if (owner !== this.cluster.instance || this.owners.get(key) === owner) return finish();
    // This node takes the key over (a room whose node died, or its first
    // use here): what the modules keep of it in memory is brought up to date
    // from storage before any stanza for it is handled. Stanzas arriving
    // meanwhile wait in the same queue, in order.
    const work: Array<Promise<void>> = [];
    for (const [prefix, fn] of this.server.router.claimHooks) {
      if (key.startsWith(prefix)) work.push(Promise.resolve().then(() => fn(key.slice(prefix.length))));
    }
    if (work.length === 0) return finish();
    void Promise.allSettled(work).then((results) => {
      for (const r of results) {
        if (r.status === 'rejected') this.cluster.log.error('taking over a claim failed', { key, error: String(r.reason) });
      }
      finish();
    });
  }

  /** Whether the session is mirrored from another node. */
  static isRemote(s: ClientSession): boolean {
    return s instanceof RemoteSession;
  }
}

/** 32-bit FNV-1a: cheap, and spread well enough for choosing among a handful of nodes. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

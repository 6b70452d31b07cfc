// Cluster mode (cluster.redis): several jabberfly processes share one
// PostgreSQL and use Redis for what they must agree on right now. The
// layout (docs/scaling.md has the whole picture):
//
//   jf:nodes               sorted set: node instance → heartbeat deadline (ms)
//   jf:sessions:<inst>     hash: full JID → session state (wire.ts), the registry
//   jf:inbox:<inst>        stream: commands to that instance (stanzas to deliver or handle)
//   jf:claim:<key>         the instance a room (or a component link) lives on
//   jf:claims:<inst>       set: the claim keys an instance holds
//   jf:claim:sm:<SM-ID>    the instance holding a resumable stream-managed session
//   jf:events              channel: session changes, nodes joining and dying,
//                          changed entries of stores kept in memory
//
// Every node mirrors every session (remote-session.ts) so modules see the
// whole cluster in `server.sessions`; stanzas for a user are handled on
// the user's home node (routing.ts) and reach a session on another node
// through that node's inbox. An inbox is a stream, not a channel: what is
// written to a node that died stays there until a surviving node takes it
// over and re-routes it (messages go to offline storage), and the write
// itself is refused once the node is known dead (one Lua script checks and
// appends atomically), so nothing is lost between the two.
//
// XEP-0198 resumption on another node: a client whose connection dropped
// may reconnect (through a load balancer) to any node. The node that gets
// <resume previd/> for a session it does not hold looks the SM-ID up in
// Redis (a claim, jf:claim:sm:<id>, written when the session enabled
// resumption) and sends the holder a `takeover` command; the holder hands
// the session over in a `handover` command (its full JID, counters,
// unacknowledged stanzas, presence and session data: wire.ts
// HandoverState) and lets go of it without telling anyone it went; the new
// node binds it under the same full JID and session id, so the other nodes
// see the session move, never end. Looked up rather than encoded in the
// SM-ID because the id outlives a move: the client resumes with the same
// previd every time (XEP-0198 §5), and a session resumed twice may by then
// be on a third node; the claim follows it (the new node overwrites it),
// and a dead node's claims go with it, so an SM-ID of a dead node is
// unknown at once. No answer within cluster.nodeTimeout: item-not-found
// (the client binds anew), and a handover that arrives late (or whose
// client went meanwhile) ends the session on the node that has it — what
// the client never acknowledged goes to offline storage, contacts see it
// go — so nothing is lost either way.
//
// A node instance is the node name plus a random suffix: a restarted node
// is a new instance, and the old one's leftovers are cleaned like any dead
// node's.
//
// Stores that keep per-user entries in memory (blocklists, archiving
// preferences, push registrations, roster views) announce a changed entry
// on jf:events once it is stored; the other nodes re-read it from storage
// (host/store-changes.ts). Pub/sub may lose notices while a connection is
// down: a node whose events connection comes back, like a node joining,
// re-reads every such entry.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { ComponentService } from '../component/component-service.ts';
import type { Host } from '../host/host.ts';
import type { StoreChangesLink } from '../host/store-changes.ts';
import type { ClientSession, Origin } from '../host/session.ts';
import { Jid } from '../jid/jid.ts';
import { handBackUnacknowledged } from '../c2s/hand-back.ts';
import { trackDurable } from '../storage/durability.ts';
import type { Logger } from '../log.ts';
import type { Server } from '../server.ts';
import { type Element, parse } from '../xml/element.ts';
import type { StreamErrorName } from '../xml/errors.ts';
import { LocalSessions } from './local-sessions.ts';
import { type MirrorLink, RemoteSession } from './remote-session.ts';
import { ClusterRouting } from './routing.ts';
import {
  type ClusterEvent,
  type Command,
  type CommandResult,
  decodeValue,
  type HandoverState,
  encodeOrigin,
  type OriginWire,
  type SessionState,
} from './wire.ts';

const NODES = 'jf:nodes';
const EVENTS = 'jf:events';
const inboxKey = (inst: string) => `jf:inbox:${inst}`;
const sessionsKey = (inst: string) => `jf:sessions:${inst}`;
const claimsKey = (inst: string) => `jf:claims:${inst}`;
export const claimKey = (key: string) => `jf:claim:${key}`;
/** Commands read per round trip. */
const READ_BATCH = 500;
/** Forwarding hops after which a stanza is handled where it is (views of the cluster disagree for a moment). */
const MAX_HOPS = 3;

// Appends to a node's inbox only while the node is registered: once a
// cleaner removed it, the sender learns so and routes the stanza again.
const SEND_SCRIPT = `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
  return 1
end
return 0`;
// A heartbeat that finds its node removed (declared dead) says so.
const BEAT_SCRIPT = `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
return 0`;
// The owner of a claim if it is alive; else, when asked to, this node takes it.
const CLAIM_SCRIPT = `
local o = redis.call('GET', KEYS[1])
if o and redis.call('ZSCORE', KEYS[2], o) then return o end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[3], KEYS[1])
  return ARGV[1]
end
if o then redis.call('DEL', KEYS[1]) end
return false`;
// Drops the claims a dead instance held (only those still naming it).
const RELEASE_SCRIPT = `
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
redis.call('DEL', KEYS[1])
return 1`;

// Removes an SM-ID's record if it still names this instance (the session may have moved on).
const SM_RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], KEYS[1])
return 1`;

// A session handed over to instance ARGV[4] (XEP-0198 resumption there), in
// one step so that no node sees it missing and nothing addressed to it can
// reach the new node before the handover: this instance's registry entry goes
// (if it is still that session), every node is told it moved (jf:events),
// and the handover is appended to the new node's inbox — or nothing at all
// happens when that node is no longer registered (0).
const MOVE_SCRIPT = `
if not redis.call('ZSCORE', KEYS[2], ARGV[4]) then return 0 end
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and cjson.decode(v).s == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('PUBLISH', KEYS[4], ARGV[3])
redis.call('XADD', KEYS[3], '*', 'm', ARGV[5])
return 1`;
// Removes this instance's registry entry for a full JID if it is still session ARGV[2].
const UNREGISTER_SCRIPT = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and cjson.decode(v).s == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1`;

/** How long a moved session's old (instance, session id) stays ignored: later states of it from there are stale. */
const TOMBSTONE_MS = 120_000;

/** A node's answer to a resumption (wire.ts `handover` without the token). */
export type HandoverAnswer = Omit<Extract<Command, { t: 'handover' }>, 't' | 'r'>;

interface ClusterRedis extends Redis {
  jfSend(nodes: string, inbox: string, inst: string, payload: string): Promise<number>;
  jfBeat(nodes: string, inst: string, deadline: number): Promise<number>;
  jfClaim(claim: string, nodes: string, claims: string, inst: string, auto: string): Promise<string | null>;
  jfRelease(claims: string, inst: string): Promise<number>;
  jfMove(sessions: string, nodes: string, inbox: string, events: string, j: string, sid: string, event: string, to: string, payload: string): Promise<number>;
}

function connect(url: string, log: Logger, role: string, autoPipeline: boolean): ClusterRedis {
  const redis = new Redis(url, {
    enableAutoPipelining: autoPipeline,
    maxRetriesPerRequest: autoPipeline ? 3 : null,
    lazyConnect: true,
  }) as ClusterRedis;
  redis.on('error', (err: Error) => log.warn('redis connection problem', { role, error: err.message }));
  redis.defineCommand('jfSend', { numberOfKeys: 2, lua: SEND_SCRIPT });
  redis.defineCommand('jfBeat', { numberOfKeys: 1, lua: BEAT_SCRIPT });
  redis.defineCommand('jfClaim', { numberOfKeys: 3, lua: CLAIM_SCRIPT });
  redis.defineCommand('jfRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
  redis.defineCommand('jfMove', { numberOfKeys: 4, lua: MOVE_SCRIPT });
  return redis;
}

export class Cluster implements MirrorLink, StoreChangesLink {
  readonly node: string;
  readonly instance: string;
  readonly routing: ClusterRouting;
  readonly log: Logger;
  private readonly cmd: ClusterRedis;
  private readonly sub: ClusterRedis;
  private readonly reader: ClusterRedis;
  /** Instances in jf:nodes (alive, or dead and not yet cleaned up), this one included. */
  readonly members = new Set<string>();
  /** Mirrors of other instances' sessions, by instance then session id. */
  private readonly mirrors = new Map<string, Map<string, RemoteSession>>();
  private readonly local: LocalSessions;
  private beatTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Commands gathered this event-loop turn, per instance: one inbox entry each (a JSON array). */
  private readonly outbox = new Map<string, { cmds: string[]; done: Array<(r: CommandResult) => void> }>();
  private flushScheduled = false;
  private readerDone: Promise<void> = Promise.resolve();
  /** Store-change notices Redis refused ("store\nkey"): published again when the connection is back. */
  private readonly unsentChanges = new Set<string>();
  private readonly heartbeatMs: number;
  private readonly timeoutMs: number;
  /** Counters for `jabberfly status` and the bench. */
  readonly stats = { forwarded: 0, received: 0, rerouted: 0, nodesCleaned: 0, sessionsMovedIn: 0, sessionsMovedOut: 0 };
  /** Resumptions waiting for another node's handover, by reply token. */
  private readonly handovers = new Map<string, (answer: HandoverAnswer) => void>();
  /** Bind orders of sessions resumed here from another node (they keep theirs). */
  private readonly adopted = new WeakMap<ClientSession, number>();
  /** "instance\nsession id" of sessions that moved away from that instance → until when their states from there are ignored. */
  private readonly tombstones = new Map<string, number>();

  private constructor(private readonly server: Server) {
    const c = server.config.cluster;
    this.node = c.node || `node-${process.pid}`;
    this.instance = `${this.node}#${randomBytes(4).toString('hex')}`;
    this.log = server.log.child('cluster');
    this.heartbeatMs = c.heartbeat * 1000;
    this.timeoutMs = c.nodeTimeout * 1000;
    this.cmd = connect(c.redis, this.log, 'commands', true);
    this.sub = connect(c.redis, this.log, 'events', false);
    this.reader = connect(c.redis, this.log, 'inbox', false);
    this.local = new LocalSessions((session, state) => this.publishState(session, state));
    this.routing = new ClusterRouting(server, this);
  }

  /** Joins the cluster: registers, mirrors every live session, starts reading its inbox. */
  static async start(server: Server): Promise<Cluster> {
    const cluster = new Cluster(server);
    try {
      await cluster.join();
    } catch (err) {
      await cluster.disconnect();
      throw new Error(`cannot join the cluster at cluster.redis: ${(err as Error).message}`);
    }
    return cluster;
  }

  private async join(): Promise<void> {
    await Promise.all([this.cmd.connect(), this.sub.connect(), this.reader.connect()]);
    // Events first, so nothing that changes while the registry is read is missed.
    this.sub.on('message', (_channel: string, message: string) => this.onEvent(JSON.parse(message) as ClusterEvent));
    await this.sub.subscribe(EVENTS);
    // A reconnected events connection may have missed changes: read the registry again.
    // Store-change notices may have been missed too: every entry kept in memory is read again.
    this.sub.on('ready', () => {
      void this.resync().catch((e) => this.log.warn('resync failed', { error: String(e) }));
      void this.server.storeChanges.resync();
    });
    this.cmd.on('ready', () => this.publishUnsent());
    await this.cmd.zadd(NODES, Date.now() + this.timeoutMs, this.instance);
    await this.cmd.publish(EVENTS, JSON.stringify({ t: 'up', i: this.instance } satisfies ClusterEvent));
    await this.resync();
    // The stores were loaded before this node listened for changes: what changed meanwhile is read now.
    this.server.storeChanges.attach(this);
    await this.server.storeChanges.resync();
    this.readerDone = this.readInbox();
    this.beatTimer = setInterval(() => void this.beat().catch((e) => this.log.warn('heartbeat failed', { error: String(e) })), this.heartbeatMs);
    this.beatTimer.unref();
    this.server.router.cluster = this.routing;
    this.server.statusSections.add('cluster', () => this.status());
    this.log.info('joined the cluster', { node: this.node, instance: this.instance, nodes: this.members.size });
  }

  private status() {
    return {
      node: this.node,
      instance: this.instance,
      nodes: [...this.members].sort(),
      localSessions: this.server.sessions.count - this.mirrorCount(),
      remoteSessions: this.mirrorCount(),
      // Where this node routes other nodes' sessions ("full JID instance"; the first hundred).
      remoteSessionList: this.mirrorList(100),
      forwarded: this.stats.forwarded,
      received: this.stats.received,
      sessionsMovedIn: this.stats.sessionsMovedIn,
      sessionsMovedOut: this.stats.sessionsMovedOut,
      storeEntriesReloaded: Object.fromEntries(this.server.storeChanges.reloaded),
    };
  }

  private mirrorList(max: number): string[] {
    const list: string[] = [];
    for (const s of this.server.sessions.all()) {
      if (list.length >= max) break;
      if (s instanceof RemoteSession) list.push(`${s.jid} ${s.instance}`);
    }
    return list;
  }

  private mirrorCount(): number {
    let n = 0;
    for (const m of this.mirrors.values()) n += m.size;
    return n;
  }

  /** Reads the member list and every other instance's sessions. */
  private async resync(): Promise<void> {
    const members = await this.cmd.zrange(NODES, 0, -1);
    this.setMembers(members);
    for (const inst of members) {
      if (inst === this.instance) continue;
      const all = await this.cmd.hgetall(sessionsKey(inst));
      const seen = new Set<string>();
      for (const json of Object.values(all)) {
        const st = JSON.parse(json) as SessionState;
        seen.add(st.s);
        this.mirror(inst, st);
      }
      // Sessions gone while the events connection was away.
      // (Not a stand-in for a session moving there, version 0: it is in no registry until that node binds it.)
      for (const [sid, m] of this.mirrors.get(inst) ?? []) if (!seen.has(sid) && m.version > 0) this.dropMirror(inst, m);
    }
  }

  private setMembers(list: string[]): void {
    const now = new Set(list);
    now.add(this.instance);
    for (const inst of [...this.members]) if (!now.has(inst)) this.forgetInstance(inst);
    for (const inst of now) this.members.add(inst);
  }

  // ---- sessions -------------------------------------------------------

  /** A session bound here: watched, registered and announced. */
  bound(session: ClientSession): void {
    const state = this.local.watch(session, this.adopted.get(session));
    this.publishState(session, state);
  }

  /** A session of this node ended. */
  unbound(session: ClientSession): void {
    this.local.unwatch(session);
    const j = session.jid.toString();
    // Only if the registry entry is still this session (a replacement may have taken the JID).
    void this.cmd
      .hget(sessionsKey(this.instance), j)
      .then((json) => {
        if (json && (JSON.parse(json) as SessionState).s === session.id) return this.cmd.hdel(sessionsKey(this.instance), j);
      })
      .then(() => this.cmd.publish(EVENTS, JSON.stringify({ t: 'g', i: this.instance, j, s: session.id } satisfies ClusterEvent)))
      .catch((e) => this.log.warn('session removal not announced', { jid: j, error: String(e) }));
  }

  bindOrder(session: ClientSession): number {
    return session instanceof RemoteSession ? session.bindOrder : (this.local.bindOrder(session) ?? 0);
  }

  instanceOf(session: ClientSession): string {
    return session instanceof RemoteSession ? session.instance : this.instance;
  }

  private publishState(session: ClientSession, state: SessionState): void {
    if (this.server.sessions.get(session.jid) !== session) return;
    const json = JSON.stringify(state);
    void Promise.all([
      this.cmd.hset(sessionsKey(this.instance), state.j, json),
      this.cmd.publish(EVENTS, `{"t":"s","i":${JSON.stringify(this.instance)},"st":${json}}`),
    ]).catch((e) => this.log.warn('session state not published', { jid: state.j, error: String(e) }));
  }

  private mirror(inst: string, st: SessionState): void {
    // A session that moved away from `inst` (a resumption on another node): a state of it from there is stale.
    if (this.tombstoned(inst, st.s)) return;
    if (!this.members.has(inst)) this.members.add(inst);
    let byId = this.mirrors.get(inst);
    if (!byId) {
      byId = new Map();
      this.mirrors.set(inst, byId);
    }
    const known = byId.get(st.s);
    if (known) {
      known.apply(st);
      return;
    }
    const jid = Jid.parse(st.j);
    const current = this.server.sessions.get(jid);
    // Session ids are unique: the same session bound elsewhere (here, or mirrored from another
    // node) moved there, and this is an older announcement of it, not a new session.
    if (current && current.id === st.s && this.instanceOf(current) !== inst) return;
    const mirror = new RemoteSession(inst, st, this);
    if (current && !(current instanceof RemoteSession) && this.bindOrder(current) > mirror.bindOrder) {
      // Our own session with this full JID is newer: it wins, the older one elsewhere goes.
      mirror.close('conflict', 'replaced by a new connection with the same resource');
      return;
    }
    byId.set(st.s, mirror);
    const old = this.server.sessions.add(mirror);
    // An older session of ours with this JID: the newer one elsewhere replaces it.
    if (old && old !== mirror && !(old instanceof RemoteSession)) old.close('conflict', 'replaced by a new connection with the same resource');
  }

  private tombstoned(inst: string, sid: string): boolean {
    const until = this.tombstones.get(`${inst}\n${sid}`);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.tombstones.delete(`${inst}\n${sid}`);
    return false;
  }

  private tombstone(inst: string, sid: string): void {
    const now = Date.now();
    // Expired ones go as new ones come (a map in insertion order: the oldest first).
    for (const [k, until] of this.tombstones) {
      if (until > now) break;
      this.tombstones.delete(k);
    }
    this.tombstones.delete(`${inst}\n${sid}`);
    this.tombstones.set(`${inst}\n${sid}`, now + TOMBSTONE_MS);
  }

  /**
   * Session `st.s` moved from `from` to `to` (another node's `m` event):
   * routed to `to` from now on, without any node seeing it end; later
   * states of it from `from` are ignored.
   */
  private moved(from: string, to: string, st: SessionState): void {
    this.tombstone(from, st.s);
    // It may come back to a node it left before.
    this.tombstones.delete(`${to}\n${st.s}`);
    // To this node: it binds here once the handover (right behind this event in the inbox) is read;
    // until then the mirror of it on the old node stays (`adopt` drops it), so what is sent to it
    // from here meanwhile goes there and is passed on, after the handover.
    if (to === this.instance) return;
    // Its mirror goes (quietly: it did not end), wherever this node had it (an event missed earlier).
    const old = this.mirrors.get(from)?.get(st.s);
    if (old) this.dropMirror(from, old);
    const current = this.server.sessions.get(Jid.parse(st.j));
    if (current instanceof RemoteSession && current.id === st.s) this.dropMirror(current.instance, current);
    this.mirror(to, st);
  }

  private dropMirror(inst: string, m: RemoteSession): void {
    this.mirrors.get(inst)?.delete(m.id);
    this.server.sessions.remove(m);
  }

  /** An instance left the member list: its mirrors go (the cleaner told contacts). */
  private forgetInstance(inst: string): void {
    if (inst === this.instance) return;
    this.members.delete(inst);
    for (const m of this.mirrors.get(inst)?.values() ?? []) this.server.sessions.remove(m);
    this.mirrors.delete(inst);
    this.routing.forgetOwner(inst);
  }

  private onEvent(e: ClusterEvent): void {
    if ('i' in e && e.i === this.instance) return;
    switch (e.t) {
      case 'up':
        this.members.add(e.i);
        break;
      case 's':
        this.mirror(e.i, e.st);
        break;
      case 'g': {
        const m = this.mirrors.get(e.i)?.get(e.s);
        if (m) this.dropMirror(e.i, m);
        break;
      }
      case 'm':
        this.moved(e.i, e.to, e.st);
        break;
      case 'dead':
        this.forgetInstance(e.i);
        break;
      case 'c':
        void this.server.storeChanges.received(e.n, e.k);
        break;
    }
  }

  // ---- store changes --------------------------------------------------

  /** Tells the other nodes that an entry kept in memory changed (it is stored already). */
  async publish(store: string, key: string): Promise<void> {
    try {
      await this.cmd.publish(EVENTS, JSON.stringify({ t: 'c', i: this.instance, n: store, k: key } satisfies ClusterEvent));
    } catch (err) {
      // Kept, and sent again once Redis answers (the others re-read: a late notice is harmless).
      this.unsentChanges.add(`${store}\n${key}`);
      throw err;
    }
  }

  private publishUnsent(): void {
    for (const entry of [...this.unsentChanges]) {
      this.unsentChanges.delete(entry);
      const [store, key] = entry.split('\n') as [string, string];
      this.publish(store, key).catch((err) => this.log.warn('store change still not announced', { store, key, error: String(err) }));
    }
  }

  // ---- commands -------------------------------------------------------

  /**
   * Appends a command to an instance's inbox. The commands of one
   * event-loop turn for one instance travel as one entry (a burst of
   * messages costs one script call and one read, not one per stanza), in
   * the order they were given.
   */
  command(inst: string, cmd: Command): Promise<CommandResult> {
    return new Promise((resolve) => {
      let box = this.outbox.get(inst);
      if (!box) {
        box = { cmds: [], done: [] };
        this.outbox.set(inst, box);
      }
      box.cmds.push(JSON.stringify(cmd));
      box.done.push(resolve);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const [inst, box] of this.outbox) {
      this.outbox.delete(inst);
      const payload = box.cmds.length === 1 ? box.cmds[0]! : `[${box.cmds.join(',')}]`;
      const settle = (r: CommandResult) => {
        for (const fn of box.done) fn(r);
      };
      this.cmd.jfSend(NODES, inboxKey(inst), inst, payload).then(
        (ok) => {
          if (ok !== 1) {
            this.forgetInstance(inst);
            return settle('gone');
          }
          this.stats.forwarded += box.cmds.length;
          settle('ok');
        },
        (err) => {
          this.log.warn('cluster command failed', { to: inst, commands: box.cmds.length, error: String(err) });
          settle('error');
        },
      );
    }
  }

  /** A stanza to handle on another instance (its recipient's home, a room's node). */
  forward(inst: string, stanza: Element, origin: Origin, hops = 0): void {
    const cmd: Command = { t: 'route', x: stanza.toString(), o: encodeOrigin(origin, (sess) => this.instanceOf(sess)), h: hops + 1 };
    // Tracked by the sender's durability barrier: its later replies (and
    // stream-management acks) wait until the stanza is in the other node's
    // inbox, or handled here (e.g. stored offline) when Redis failed.
    trackDurable(
      this.command(inst, cmd).then((r) => {
        // That node is gone: route it again now that its sessions are forgotten.
        if (r === 'gone') this.server.router.route(stanza, origin);
        // Redis failed: handle it here, where it stays (a message for a session on another node then goes offline).
        else if (r === 'error') this.server.router.deliverHere(stanza, origin, true, hops);
      }),
    );
  }

  /**
   * A stanza for a session that is gone or unreachable. Messages: routed
   * again when the session is known gone (to the user's other resources or
   * offline storage); stored offline at once when Redis failed (routing
   * again would try the same node). Iq requests are answered with an error,
   * the rest dropped (state a client fetches again).
   */
  undeliverable(_session: RemoteSession | null, stanza: Element, why: Exclude<CommandResult, 'ok'> = 'gone'): void {
    this.stats.rerouted++;
    const type = stanza.attrs.type ?? 'normal';
    if (stanza.name === 'message' && (type === 'chat' || type === 'normal')) {
      if (why === 'gone') return this.server.router.route(stanza);
      const to = Jid.tryParse(stanza.attrs.to);
      const from = Jid.tryParse(stanza.attrs.from);
      const host = to && this.server.hosts.get(to.domain);
      if (!to || !from || !host) return;
      const stored = host.events.fire('message/offline', { stanza, origin: { kind: 'server' }, host, to: to.toBare(), from });
      if (stored instanceof Promise) stored.catch((err) => this.log.warn('offline storage refused a message', { to: to.bare, error: String(err) }));
    } else if (stanza.name === 'iq' && (type === 'get' || type === 'set')) {
      this.server.router.bounce(stanza, 'service-unavailable');
    }
  }

  private async readInbox(): Promise<void> {
    let last = '0';
    const key = inboxKey(this.instance);
    while (!this.stopped) {
      let reply: Array<[string, Array<[string, string[]]>]> | null;
      try {
        reply = (await this.reader.xread('COUNT', READ_BATCH, 'BLOCK', 2000, 'STREAMS', key, last)) as typeof reply;
      } catch (err) {
        if (this.stopped) return;
        this.log.warn('inbox read failed', { error: String(err) });
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (!reply) continue;
      for (const [, entries] of reply) {
        for (const [id, fields] of entries) {
          last = id;
          for (const c of commandsOf(fields)) {
            this.stats.received++;
            try {
              // Mostly synchronous; a command that must wait (an origin not mirrored yet) holds the ones after it.
              const waiting = this.onCommand(c);
              if (waiting) await waiting;
            } catch (err) {
              this.log.error('cluster command failed here', { error: String((err as Error)?.stack ?? err) });
            }
          }
        }
      }
      // Handled: trimmed at once, so a takeover after a crash re-routes as little as possible twice
      // (on the commands connection, pipelined: the next read does not wait for it).
      void this.cmd.xtrim(key, 'MINID', incrementId(last)).catch(() => {});
    }
  }

  private localSession(j: string, sid: string): ClientSession | undefined {
    const s = this.server.sessions.get(Jid.parse(j));
    return s && !(s instanceof RemoteSession) && s.id === sid ? s : undefined;
  }

  /**
   * A command for a session of this node that moved to another (a
   * resumption there): passed on to it, like a stanza to deliver, while
   * this node routes that session id there; dropped otherwise (it ended).
   */
  private followMoved(c: Extract<Command, { t: 'close' | 'set' | 'data' }>): undefined {
    const s = this.server.sessions.get(Jid.parse(c.j));
    if (s instanceof RemoteSession && s.id === c.s) void this.command(s.instance, c);
    return undefined;
  }

  private onCommand(c: Command): Promise<void> | undefined {
    switch (c.t) {
      case 'send': {
        // The session, here or (the same session id) moved to another node by a resumption there.
        const s = this.server.sessions.get(Jid.parse(c.j));
        const stanza = parse(c.x);
        if (s && s.id === c.s) s.send(stanza);
        else this.undeliverable(null, stanza);
        return;
      }
      case 'route': {
        const stanza = parse(c.x);
        const deliver = () => this.server.router.deliverHere(stanza, this.origin(c.o), (c.h ?? 0) >= MAX_HOPS, c.h ?? 0);
        // The sender's session event travels on another connection and may not be here yet: fetch its state.
        if (c.o.k === 'c2s' && c.o.i !== this.instance && !this.server.sessions.get(Jid.parse(c.o.j))) {
          return this.fetchMirror(c.o.i, c.o.j).then(deliver);
        }
        deliver();
        return;
      }
      case 'close': {
        const s = this.localSession(c.j, c.s);
        if (s) s.close(c.e as StreamErrorName | undefined, c.m);
        else this.followMoved(c);
        return;
      }
      case 'set': {
        const s = this.localSession(c.j, c.s);
        if (!s) return this.followMoved(c);
        if (c.f === 'presence') s.presence = c.v === null ? null : parse(c.v as string);
        else if (c.f === 'priority') s.priority = c.v as number;
        else s.rosterRequested = c.v as boolean;
        return;
      }
      case 'data': {
        const s = this.localSession(c.j, c.s);
        if (!s) return this.followMoved(c);
        if (c.del) s.data.delete(c.k);
        else s.data.set(c.k, decodeValue(c.v));
        return;
      }
      case 'takeover':
        this.handOver(c);
        return;
      case 'handover': {
        const waiting = this.handovers.get(c.r);
        if (waiting) {
          this.handovers.delete(c.r);
          waiting(c);
          // The session binds in the resumption's continuation: commands after this one
          // (stanzas the old node passed on to it) wait until it has.
          return new Promise((resolve) => setImmediate(resolve));
        }
        if (c.st) this.orphaned(c.st);
        return;
      }
    }
  }

  // ---- XEP-0198 resumption on another node --------------------------------

  /** A session enabled resumption here: recorded as held by this instance. */
  smEnabled(id: string): void {
    this.claim(`sm:${id}`, true).catch((err) => this.log.warn('resumable session not recorded', { error: String(err) }));
  }

  /** A resumable session ended here (or left): its record goes, if it still names this instance. */
  smEnded(id: string): void {
    this.cmd
      .eval(SM_RELEASE_SCRIPT, 2, claimKey(`sm:${id}`), claimsKey(this.instance), this.instance)
      .catch((err) => this.log.warn('resumable session record not removed', { error: String(err) }));
  }

  /**
   * Asks the node holding SM-ID `id` to hand the session over (for `bare`,
   * whose client acknowledged `h`). Resolves with its state, or why not;
   * item-not-found when nobody holds it or the holder does not answer
   * within cluster.nodeTimeout.
   */
  async requestHandover(id: string, bare: string, h: number): Promise<HandoverAnswer> {
    let owner: string | null;
    try {
      owner = await this.claim(`sm:${id}`, false);
    } catch (err) {
      this.log.warn('resumable session lookup failed', { error: String(err) });
      return { f: 'item-not-found' };
    }
    if (!owner || owner === this.instance) return { f: 'item-not-found' };
    const r = randomBytes(9).toString('base64url');
    const started = Date.now();
    return new Promise<HandoverAnswer>((resolve) => {
      const settle = (answer: HandoverAnswer) => {
        clearTimeout(timer);
        this.handovers.delete(r);
        resolve(answer);
      };
      const timer = setTimeout(() => {
        this.log.warn('resumption: the node holding the session did not answer', { node: owner, ms: this.timeoutMs });
        settle({ f: 'item-not-found' });
      }, this.timeoutMs);
      timer.unref();
      this.handovers.set(r, (answer) => {
        if (answer.st) {
          this.stats.sessionsMovedIn++;
          this.log.info('resumption: session handed over', { from: owner, jid: answer.st.j, ms: Date.now() - started });
        }
        settle(answer);
      });
      void this.command(owner!, { t: 'takeover', id, u: bare, h, r, i: this.instance }).then((res) => {
        if (res !== 'ok') settle({ f: 'item-not-found' });
      });
    });
  }

  /** Another node resumes one of this node's sessions: it is handed over (or the reason why not is sent). */
  private handOver(c: Extract<Command, { t: 'takeover' }>): void {
    const session = this.server.smSessions.get(c.id);
    const answer: Promise<HandoverAnswer> = session ? session.moveToNode(c.u, c.h, c.i) : Promise.resolve({ f: 'item-not-found' });
    void answer
      .catch((err: unknown): HandoverAnswer => {
        this.log.error('handing a session over failed', { error: String((err as Error)?.stack ?? err) });
        return { f: 'item-not-found' };
      })
      .then(async (a) => {
        if (!a.st) {
          await this.command(c.i, { t: 'handover', r: c.r, ...a });
          return;
        }
        this.stats.sessionsMovedOut++;
        // The new node records itself as the holder; this only removes a record still naming this node.
        this.smEnded(c.id);
        const st = a.st;
        const event: ClusterEvent = { t: 'm', i: this.instance, to: c.i, st: standInState(st) };
        const payload = JSON.stringify({ t: 'handover', r: c.r, ...a } satisfies Command);
        let sent: number;
        try {
          sent = await this.cmd.jfMove(sessionsKey(this.instance), NODES, inboxKey(c.i), EVENTS, st.j, st.s, JSON.stringify(event), c.i, payload);
        } catch (err) {
          // Whether the script ran is unknown; ending the session here would end it twice if it did.
          // It stays routed to the new node: if that node never got it, its resumption fails with
          // item-not-found after cluster.nodeTimeout and the client binds anew.
          this.log.warn('resumption: handing the session over may have failed', { jid: st.j, to: c.i, error: String(err) });
          return;
        }
        // The asking node is gone: the session ends here after all.
        if (sent !== 1) {
          this.forgetInstance(c.i);
          this.orphaned(st);
        }
      });
  }

  /**
   * One of this node's sessions is leaving for instance `to` (a resumption
   * there; C2SSession.moveToNode, in the same turn as it leaves the
   * registry): it is routed to `to` at once — stanzas for it that reach
   * this node meanwhile (or wait in its inbox) follow it there instead of
   * going offline; the new node's first announcement (version 1) replaces
   * this stand-in's state. When this node stops being the user's home
   * node, modules keeping per-user state here hear `user-home-left`.
   */
  movedOut(session: ClientSession, st: HandoverState, to: string): void {
    this.local.unwatch(session);
    // It may have left `to` before: that node's states of it count again.
    this.tombstones.delete(`${to}\n${st.s}`);
    const host = this.server.hosts.get(session.jid.domain);
    const bare = session.jid.bare;
    const wasHome = this.routing.homeOf(bare) === this.instance;
    let byId = this.mirrors.get(to);
    if (!byId) {
      byId = new Map();
      this.mirrors.set(to, byId);
    }
    const standIn = new RemoteSession(to, standInState(st), this);
    byId.set(st.s, standIn);
    if (this.server.sessions.get(session.jid) === session) this.server.sessions.add(standIn);
    else this.server.sessions.remove(session);
    if (host && wasHome && this.routing.homeOf(bare) !== this.instance) host.sessionEvents.fire('user-home-left', { session, host });
  }

  /**
   * A session resumed here from another node is bound and its client told
   * so: if that made this node the user's home node, modules that keep
   * per-user state on the home node build it (`user-home-gained`).
   */
  resumedHere(session: ClientSession): void {
    const host = this.server.hosts.get(session.jid.domain);
    if (host && this.routing.homeOf(session.jid.bare) === this.instance) host.sessionEvents.fire('user-home-gained', { session, host });
  }

  /**
   * A session resumed here from another node: the mirror of it there goes
   * (quietly: it did not end), it keeps its bind order, and this node
   * becomes the holder of its SM-ID. Called just before it binds.
   */
  adopt(session: ClientSession, bindOrder: number, smId: string): void {
    for (const byId of this.mirrors.values()) {
      const m = byId.get(session.id);
      if (m?.jid.equals(session.jid)) {
        byId.delete(session.id);
        this.server.sessions.remove(m);
      }
    }
    this.adopted.set(session, bindOrder);
    const key = claimKey(`sm:${smId}`);
    this.cmd
      .multi()
      .set(key, this.instance)
      .sadd(claimsKey(this.instance), key)
      .exec()
      .catch((err) => this.log.warn('resumable session not recorded', { error: String(err) }));
  }

  /**
   * A handed-over session that cannot continue (its client went while the
   * state travelled, the answer came after the resumption gave up, or the
   * node that asked died): it ends here as if it had expired — contacts get
   * its unavailable presence, what the client never acknowledged goes to
   * offline storage or bounces (delivery/failure, as for an expired session).
   */
  orphaned(st: HandoverState): void {
    const jid = Jid.parse(st.j);
    const host = this.server.hosts.get(jid.domain);
    if (!host) return;
    // Bound here under that id after all (a handover answered twice): it lives, nothing ends.
    const bound = this.server.sessions.get(jid);
    if (bound && bound.id === st.s && !(bound instanceof RemoteSession)) return;
    this.log.info('resumption: handed-over session ends here', { jid: st.j, unacked: st.u.length });
    // The old node (and any that saw it) routes the session here already: it goes everywhere.
    for (const [inst, byId] of this.mirrors) {
      const m = byId.get(st.s);
      if (m) this.dropMirror(inst, m);
    }
    // Its registry entry here (the node it was leaving) goes too, if it is still there.
    void this.cmd
      .eval(UNREGISTER_SCRIPT, 1, sessionsKey(this.instance), st.j, st.s)
      .then(() => this.cmd.publish(EVENTS, JSON.stringify({ t: 'g', i: this.instance, j: st.j, s: st.s } satisfies ClusterEvent)))
      .catch((e) => this.log.warn('session removal not announced', { jid: st.j, error: String(e) }));
    const ghost = new RemoteSession(
      this.instance,
      { ...standInState(st), v: 1 },
      { command: () => Promise.resolve('gone'), undeliverable: () => {} },
    );
    host.sessionEvents.fire('resource-unbind', { session: ghost, host });
    trackDurable(handBackUnacknowledged(host, this.server.router, jid, { kind: 'server' }, st.u.map((x) => parse(x))));
  }

  private async fetchMirror(inst: string, j: string): Promise<void> {
    const json = await this.cmd.hget(sessionsKey(inst), j).catch(() => null);
    if (json) this.mirror(inst, JSON.parse(json) as SessionState);
  }

  private origin(o: OriginWire): Origin {
    switch (o.k) {
      case 'c2s': {
        const s = this.server.sessions.get(Jid.parse(o.j));
        return s && s.id === o.s ? { kind: 'c2s', session: s } : { kind: 'server' };
      }
      case 's2s':
        return { kind: 's2s', domains: new Set(o.d) };
      case 'component':
        return { kind: 'component', domain: o.d };
      case 'on-behalf':
        return { kind: 'on-behalf', domain: o.d };
      case 'host':
        return { kind: 'host', name: o.n };
      default:
        return { kind: 'server' };
    }
  }

  // ---- claims ---------------------------------------------------------

  /** The live owner of `key`; with `take`, this instance becomes the owner when there is none. */
  async claim(key: string, take: boolean): Promise<string | null> {
    return this.cmd.jfClaim(claimKey(key), NODES, claimsKey(this.instance), this.instance, take ? '1' : '0');
  }

  /**
   * XEP-0114 components: the node a component's link is connected to claims
   * its domain, so stanzas for it from every node are sent there; the claim
   * goes when the link closes (or with the node).
   */
  watchComponents(service: ComponentService): void {
    service.onConnect((domain) => {
      void this.claim(`component:${domain}`, true).then(
        (owner) => {
          if (owner !== this.instance) this.log.warn('component also connected to another node: that one serves it', { domain, owner });
        },
        (err) => this.log.warn('component claim failed', { domain, error: String(err) }),
      );
    });
    service.onDisconnect((domain) => {
      this.release(`component:${domain}`).catch((err) => this.log.warn('component claim not released', { domain, error: String(err) }));
    });
  }

  /** Gives up a claim this instance holds (a component link that closed). */
  async release(key: string): Promise<void> {
    await this.cmd.eval(`if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1`, 1, claimKey(key), this.instance);
  }

  // ---- liveness -------------------------------------------------------

  private async beat(): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    const alive = await this.cmd.jfBeat(NODES, this.instance, now + this.timeoutMs);
    if (alive !== 1) return this.evicted();
    // Nodes past their deadline: whoever removes one from the set cleans it up.
    const expired = await this.cmd.zrangebyscore(NODES, '-inf', now);
    for (const inst of expired) {
      if (inst === this.instance) continue;
      if ((await this.cmd.zrem(NODES, inst)) === 1) await this.cleanUp(inst);
    }
    this.setMembers(await this.cmd.zrange(NODES, 0, -1));
  }

  /**
   * Takes over a dead instance: its sessions end (contacts get unavailable
   * presence, as for a dropped connection), what waited in its inbox is
   * routed again (messages to its users go to offline storage), its
   * registry entries and claims are dropped.
   */
  private async cleanUp(inst: string): Promise<void> {
    this.stats.nodesCleaned++;
    const dead = [...(this.mirrors.get(inst)?.values() ?? [])];
    this.log.warn('node found dead: taking over', { instance: inst, sessions: dead.length });
    await this.cmd.publish(EVENTS, JSON.stringify({ t: 'dead', i: inst } satisfies ClusterEvent));
    for (const m of dead) {
      const host = this.server.hosts.get(m.jid.domain);
      if (host) host.sessionEvents.fire('resource-unbind', { session: m, host });
      this.dropMirror(inst, m);
    }
    this.forgetInstance(inst);
    let after = '-';
    for (;;) {
      const entries = (await this.cmd.xrange(inboxKey(inst), after, '+', 'COUNT', READ_BATCH)) as Array<[string, string[]]>;
      for (const [, fields] of entries) for (const c of commandsOf(fields)) this.takeOver(c);
      if (entries.length < READ_BATCH) break;
      after = `(${entries[entries.length - 1]![0]}`;
    }
    await this.cmd.del(inboxKey(inst), sessionsKey(inst));
    await this.cmd.jfRelease(claimsKey(inst), inst);
  }

  /** A command a dead node never handled. */
  private takeOver(c: Command): void {
    this.stats.rerouted++;
    if (c.t === 'send') this.undeliverable(null, parse(c.x));
    else if (c.t === 'route') this.server.router.route(parse(c.x), this.origin(c.o));
    // A resumption asked the dead node for a session: it had none left to give.
    else if (c.t === 'takeover') void this.command(c.i, { t: 'handover', r: c.r, f: 'item-not-found' });
    // A session handed to the dead node: it ends here.
    else if (c.t === 'handover' && c.st) this.orphaned(c.st);
  }

  /** This node was declared dead (a long pause, Redis unreachable): its clients reconnect, it joins anew. */
  private async evicted(): Promise<void> {
    this.log.error('this node was declared dead by the cluster: closing its sessions and joining again', { instance: this.instance });
    for (const s of [...this.server.sessions.all()]) {
      if (!(s instanceof RemoteSession)) s.close('reset', 'the server node rejoins its cluster: please reconnect');
    }
    await this.cmd.zadd(NODES, Date.now() + this.timeoutMs, this.instance);
    await this.resync();
  }

  /** Leaves cleanly: sessions are already closed; what is left in the inbox is handled here, then it goes. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.beatTimer) clearInterval(this.beatTimer);
    this.server.router.cluster = null;
    this.server.storeChanges.attach(null);
    const leave = async () => {
      // Out of the member list first: nobody appends to the inbox after this.
      await this.cmd.zrem(NODES, this.instance);
      await this.cmd.publish(EVENTS, JSON.stringify({ t: 'dead', i: this.instance } satisfies ClusterEvent));
      this.reader.disconnect();
      await this.readerDone;
      let after = '-';
      for (;;) {
        const entries = (await this.cmd.xrange(inboxKey(this.instance), after, '+', 'COUNT', READ_BATCH)) as Array<[string, string[]]>;
        for (const [, fields] of entries) for (const c of commandsOf(fields)) this.takeOver(c);
        if (entries.length < READ_BATCH) break;
        after = `(${entries[entries.length - 1]![0]}`;
      }
      await this.cmd.del(inboxKey(this.instance), sessionsKey(this.instance));
      await this.cmd.jfRelease(claimsKey(this.instance), this.instance);
    };
    // Redis unreachable: the commands would wait for it for ever (the
    // command connection retries without limit) and the process would never
    // exit. After nodeTimeout the other nodes treat this one as dead and
    // clean up after it (its inbox included), so waiting longer gains nothing.
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      leave().then(
        () => null,
        (err: unknown) => String(err),
      ),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`Redis did not answer within ${this.timeoutMs} ms (cluster.nodeTimeout)`), this.timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (outcome !== null) this.log.warn('leaving the cluster cleanly failed (the others will time this node out)', { error: outcome });
    await this.disconnect();
  }

  private async disconnect(): Promise<void> {
    this.stopped = true;
    for (const r of [this.cmd, this.sub, this.reader]) r.disconnect();
  }
}

/** How a session that is moving is mirrored until its new node announces it (version 0). */
function standInState(st: HandoverState): SessionState {
  return { j: st.j, s: st.s, b: st.b, v: 0, tr: 'tcp', ip: '', sec: false, p: st.p, pr: st.pr, rr: st.rr, d: st.d };
}

/** The commands of one inbox entry: one command, or a turn's batch as an array. */
function commandsOf(fields: string[]): Command[] {
  const v = JSON.parse(fields[1]!) as Command | Command[];
  return Array.isArray(v) ? v : [v];
}

/** The stream id just after `id` ("ms-seq"), for trimming everything up to and including it. */
function incrementId(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${Number(seq) + 1}`;
}

export type { Host };

// Watching this node's own bound sessions for what the other nodes mirror:
// presence, priority, roster interest and session data. Modules set these
// as plain fields and map entries (they are written for one process); in
// cluster mode, and only there, each bound session gets accessors and an
// observed map in their place, so any change schedules one publication of
// the session's state (coalesced per event-loop turn). A single process
// never pays for this: nothing here runs unless cluster.redis is set.
import type { ClientSession } from '../host/session.ts';
import { type SessionState, encodeValue } from './wire.ts';

interface Watched {
  session: ClientSession;
  bindOrder: number;
  version: number;
  scheduled: boolean;
}

export class LocalSessions {
  private readonly watched = new WeakMap<ClientSession, Watched>();
  private bindCounter = 0;

  constructor(private readonly publish: (session: ClientSession, state: SessionState) => void) {}

  /** Starts watching a newly bound session; returns its first state. */
  watch(session: ClientSession, bindOrder?: number): SessionState {
    // Bind order across nodes: time first (ms), then a counter within the ms; a session
    // resumed from another node keeps the one it had there.
    const w: Watched = { session, bindOrder: bindOrder ?? Date.now() * 1000 + (this.bindCounter++ % 1000), version: 0, scheduled: false };
    this.watched.set(session, w);
    const changed = () => this.schedule(w);
    for (const field of ['presence', 'priority', 'rosterRequested'] as const) {
      let value = session[field];
      Object.defineProperty(session, field, {
        configurable: true,
        enumerable: true,
        get: () => value,
        set: (v) => {
          if (v === value) return;
          value = v;
          changed();
        },
      });
    }
    const data = new ObservedMap(session.data, changed);
    Object.defineProperty(session, 'data', { configurable: true, enumerable: true, value: data, writable: false });
    return this.state(w);
  }

  bindOrder(session: ClientSession): number | undefined {
    return this.watched.get(session)?.bindOrder;
  }

  /** The session's state as mirrored elsewhere (a new version). */
  private state(w: Watched): SessionState {
    const s = w.session;
    const d: Array<[string, unknown]> = [];
    for (const [k, v] of s.data) if (v !== undefined) d.push([k, encodeValue(v)]);
    return {
      j: s.jid.toString(),
      s: s.id,
      b: w.bindOrder,
      v: ++w.version,
      tr: s.transport,
      ip: s.ip,
      sec: s.secure,
      p: s.presence ? s.presence.toString() : null,
      pr: s.priority,
      rr: s.rosterRequested,
      d,
    };
  }

  private schedule(w: Watched): void {
    if (w.scheduled) return;
    w.scheduled = true;
    // After the rest of this turn's changes (a presence sets presence and priority together).
    setImmediate(() => {
      w.scheduled = false;
      if (this.watched.get(w.session) === w) this.publish(w.session, this.state(w));
    });
  }

  unwatch(session: ClientSession): void {
    this.watched.delete(session);
  }
}

/** A session's data map that reports changes, sets included (a directed-presence set grows in place). */
class ObservedMap extends Map<string, unknown> {
  constructor(
    initial: Map<string, unknown>,
    private readonly changed: () => void,
  ) {
    super();
    for (const [k, v] of initial) super.set(k, this.observe(v));
  }

  private observe(v: unknown): unknown {
    if (v instanceof Set && !(v as { __observed?: boolean }).__observed) {
      const set = v as Set<unknown> & { __observed?: boolean };
      const { add, delete: del, clear } = set;
      const changed = () => this.changed?.();
      set.add = function (x) {
        const r = add.call(this, x);
        changed();
        return r;
      };
      set.delete = function (x) {
        const r = del.call(this, x);
        if (r) changed();
        return r;
      };
      set.clear = function () {
        clear.call(this);
        changed();
      };
      set.__observed = true;
    }
    return v;
  }

  override set(key: string, value: unknown): this {
    super.set(key, this.observe(value));
    this.changed?.();
    return this;
  }

  override delete(key: string): boolean {
    const had = super.delete(key);
    if (had) this.changed();
    return had;
  }
}

// XEP-0115 Entity Capabilities, as a PEP service needs them (XEP-0163 §4):
// which features (notably `<node>+notify`) each entity that sent a local
// user available presence has. Presence carries only a hash; the first
// time a hash is seen its disco#info is asked for (once, however many
// entities show it), the answer is hashed again (§5.4, with XEP-0128
// forms) and cached only when it matches, so nobody can poison the cache
// with a false answer. A mismatching or legacy (unhashed) answer is used for
// the entity that gave it and nobody else.
//
// Per local user with a bound resource, the entities present to them (full
// JID → caps key) are kept from the inbound presence stream; they are what
// PEP notifies, and a newly available one is told each node's last item.
import { createHash } from 'node:crypto';
import type { ServerContext } from '../host/context.ts';
import type { Host, Module, StanzaEvent } from '../host/host.ts';
import { Jid } from '../jid/jid.ts';
import type { StorageBackend } from '../storage/types.ts';
import { readForm } from '../xml/data-form.ts';
import { type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

/** Seconds to wait for a disco#info answer before forgetting the query. */
const QUERY_TIMEOUT_MS = 30_000;
/** Disco queries in flight at once (each is for a distinct, unknown hash). */
const MAX_QUERIES = 256;

const ALGORITHMS: Record<string, string> = {
  'sha-1': 'sha1',
  'sha-224': 'sha224',
  'sha-256': 'sha256',
  'sha-384': 'sha384',
  'sha-512': 'sha512',
};

/** A user learned (or re-learned) what an entity present to them supports. */
export interface InterestEvent {
  user: string;
  entity: Jid;
  features: ReadonlySet<string>;
  /** Features it had before (undefined: it just became available). */
  previous: ReadonlySet<string> | undefined;
}

interface Presence {
  /** Cache key of its caps, or null without caps. */
  key: string | null;
  /** Features once known (for legacy or unverified caps, this entity's own answer). */
  own?: ReadonlySet<string>;
  /** Whether its features were announced to listeners yet. */
  announced: boolean;
}

interface Query {
  /** Who was asked: full JID, and the local user whose address asked. */
  entity: string;
  user: string;
  key: string;
  algorithm: string | null;
  ver: string;
  timer: NodeJS.Timeout;
}

const EMPTY: ReadonlySet<string> = new Set();

export class CapsCache {
  /** Verified caps key → features, least recently used first. */
  private readonly known = new Map<string, ReadonlySet<string>>();
  /** Local user → entities present to them. */
  private readonly present = new Map<string, Map<string, Presence>>();
  private readonly queries = new Map<string, Query>();
  private readonly asking = new Set<string>();
  private readonly listeners: Array<(e: InterestEvent) => void> = [];
  private seq = 0;

  constructor(
    _backend: StorageBackend,
    private readonly server: ServerContext,
  ) {}

  /** Called when an entity's features become known to a user (or change). */
  onInterest(listener: (e: InterestEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Entities present to `user` with their known features (none while unknown). */
  *entities(user: string): Iterable<[Jid, ReadonlySet<string>]> {
    const map = this.present.get(user);
    if (!map) return;
    for (const [entity, p] of map) yield [Jid.parse(entity), this.featuresOf(p)];
  }

  /** The features of one entity present to `user`, if known. */
  features(user: string, entity: string): ReadonlySet<string> | undefined {
    const p = this.present.get(user)?.get(entity);
    return p ? this.featuresOf(p) : undefined;
  }

  private featuresOf(p: Presence): ReadonlySet<string> {
    if (p.own) return p.own;
    if (p.key === null) return EMPTY;
    return this.known.get(p.key) ?? EMPTY;
  }

  /** Inbound presence to a local user (from anyone, their own resources included). */
  presence(user: string, from: Jid, stanza: Element): void {
    const type = stanza.attrs.type;
    if (type === 'unavailable' || type === 'error') {
      this.present.get(user)?.delete(from.toString());
      return;
    }
    if (type !== undefined || from.resource === '') return;
    // Only users who are online have anyone to notify about.
    if (this.server.sessions.resources(user).length === 0) return;
    let map = this.present.get(user);
    if (!map) {
      map = new Map();
      this.present.set(user, map);
    }
    const entity = from.toString();
    const before = map.get(entity);
    const c = stanza.getChild('c', NS.caps);
    const algorithm = c?.attrs.hash ? (ALGORITHMS[c.attrs.hash.toLowerCase()] ?? null) : null;
    const ver = c?.attrs.ver;
    const node = c?.attrs.node ?? '';
    let key: string | null = null;
    if (c && ver) key = algorithm ? `${c.attrs.hash!.toLowerCase()} ${ver}` : `legacy ${entity} ${node}#${ver}`;
    if (before && before.key === key) return; // same caps: nothing new (XEP-0163: not a new "initial presence")
    const previous = before?.announced ? this.featuresOf(before) : undefined;
    const p: Presence = { key, announced: false };
    map.set(entity, p);
    if (key === null) {
      this.announce(user, from, p, previous);
      return;
    }
    if (this.known.has(key)) {
      this.touch(key);
      this.announce(user, from, p, previous);
      return;
    }
    this.ask(user, entity, key, algorithm, node, ver!);
  }

  /** A local user's last resource went away: nobody is left to notify on their behalf. */
  userOffline(user: string): void {
    this.present.delete(user);
  }

  private announce(user: string, entity: Jid, p: Presence, previous: ReadonlySet<string> | undefined): void {
    p.announced = true;
    const features = this.featuresOf(p);
    for (const l of this.listeners) l({ user, entity, features, previous });
  }

  private touch(key: string): void {
    const v = this.known.get(key)!;
    this.known.delete(key);
    this.known.set(key, v);
  }

  private ask(user: string, entity: string, key: string, algorithm: string | null, node: string, ver: string): void {
    // One question per hash at a time; whoever else shows it waits for the answer.
    if (algorithm && this.asking.has(key)) return;
    if (this.queries.size >= MAX_QUERIES) return;
    const id = `caps-${++this.seq}`;
    const timer = setTimeout(() => this.forget(id), QUERY_TIMEOUT_MS);
    timer.unref();
    this.queries.set(id, { entity, user, key, algorithm, ver, timer });
    if (algorithm) this.asking.add(key);
    this.server.router.route(
      el('iq', { type: 'get', id, from: user, to: entity }, el('query', { xmlns: NS.discoInfo, node: `${node}#${ver}` })),
    );
  }

  private forget(id: string): Query | undefined {
    const q = this.queries.get(id);
    if (!q) return undefined;
    clearTimeout(q.timer);
    this.queries.delete(id);
    this.asking.delete(q.key);
    return q;
  }

  /** An iq result or error addressed to a local user; true when it answered one of our queries. */
  answer(stanza: Element): boolean {
    const id = stanza.attrs.id;
    if (!id?.startsWith('caps-')) return false;
    const q = this.queries.get(id);
    if (!q || Jid.tryParse(stanza.attrs.from)?.toString() !== q.entity) return false;
    this.forget(id);
    const query = stanza.attrs.type === 'result' ? stanza.getChild('query', NS.discoInfo) : undefined;
    const features = query ? new Set(query.getChildren('feature').map((f) => f.attrs.var ?? '')) : EMPTY;
    const verified = query !== undefined && q.algorithm !== null && capsHash(query, q.algorithm) === q.ver;
    if (verified) {
      this.known.set(q.key, features);
      const max = this.server.config.limits.capsCacheSize;
      while (this.known.size > max) this.known.delete(this.known.keys().next().value!);
    } else if (q.algorithm) {
      this.server.log.debug('caps hash mismatch', { entity: q.entity, ver: q.ver });
    }
    // Everyone waiting on this key learns it; an unverified answer counts only for who gave it.
    for (const [user, map] of this.present) {
      for (const [entity, p] of map) {
        if (p.key !== q.key || p.announced) continue;
        if (!verified) {
          if (entity !== q.entity) continue;
          p.own = features;
        }
        this.announce(user, Jid.parse(entity), p, undefined);
      }
    }
    return true;
  }
}

/**
 * XEP-0115 §5.1 verification string of a disco#info result, hashed with
 * `algorithm` (a node crypto name) and base64-encoded; null when the result
 * is ill-formed (§5.4: duplicate identities, features or form types).
 */
export function capsHash(query: Element, algorithm: string): string | null {
  const identities = query
    .getChildren('identity')
    .map((i) => [i.attrs.category ?? '', i.attrs.type ?? '', i.attrs['xml:lang'] ?? '', i.attrs.name ?? '']);
  const features = query.getChildren('feature').map((f) => f.attrs.var ?? '');
  const idStrings = identities.map((i) => i.join('/'));
  if (new Set(idStrings).size !== idStrings.length || new Set(features).size !== features.length) return null;
  // Sorted by category, then type, then xml:lang (§5.1 step 2), each compared as octets.
  identities.sort((a, b) => octets(a[0]!, b[0]!) || octets(a[1]!, b[1]!) || octets(a[2]!, b[2]!) || octets(a[3]!, b[3]!));
  let s = '';
  for (const i of identities) s += `${i.join('/')}<`;
  for (const f of features.sort(octets)) s += `${f}<`;
  const forms = new Map<string, Element>();
  for (const x of query.getChildren('x', NS.dataForms)) {
    const typeField = x.getChildren('field').find((f) => f.attrs.var === 'FORM_TYPE');
    if (typeField?.attrs.type !== 'hidden') continue; // §5.4: ignore the form
    const values = new Set(typeField!.getChildren('value').map((v) => v.getText()));
    if (values.size !== 1) return null;
    const formType = [...values][0]!;
    if (forms.has(formType)) return null;
    forms.set(formType, x);
  }
  for (const formType of [...forms.keys()].sort(octets)) {
    s += `${formType}<`;
    const fields = [...readForm(forms.get(formType)!).fields.values()].filter((f) => f.var !== 'FORM_TYPE');
    for (const f of fields.sort((a, b) => octets(a.var, b.var))) {
      s += `${f.var}<`;
      for (const v of [...f.values].sort(octets)) s += `${v}<`;
    }
  }
  return createHash(algorithm).update(s, 'utf8').digest('base64');
}

/** "i;octet" collation: compare UTF-8 bytes, not UTF-16 code units. */
function octets(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export const capsModule: Module = (host: Host) => {
  const { server } = host;
  const caps = server.store(CapsCache);

  // Above the presence module (0): observe, never handle.
  const observe = (e: StanzaEvent) => {
    caps.presence(e.to.bare, e.from, e.stanza);
    return false;
  };
  host.hook('presence/bare', observe, 10);
  host.hook('presence/full', observe, 10);

  // Answers to our disco#info queries come to the user's bare JID.
  host.hook(
    'iq/bare',
    (e) => {
      const type = e.stanza.attrs.type;
      return (type === 'result' || type === 'error') && caps.answer(e.stanza);
    },
    10,
  );

  host.sessionEvents.hook('resource-unbind', ({ session }) => {
    const user = session.jid.bare;
    const left = server.sessions.resources(user).filter((s) => s !== session);
    if (left.length === 0) caps.userOffline(user);
    else caps.presence(user, session.jid, el('presence', { type: 'unavailable' }));
  });

  // Cluster: who is present to a user is kept on the user's home node. A
  // session resumed on another node takes the home with it: the old home
  // forgets, the new one learns the user's own resources at once (their
  // presence is in the registry) and the contacts from the probes the
  // presence module sends (their answers come here).
  host.sessionEvents.hook('user-home-left', ({ session }) => {
    caps.userOffline(session.jid.bare);
  });
  host.sessionEvents.hook('user-home-gained', ({ session }) => {
    const user = session.jid.bare;
    for (const s of server.sessions.available(user)) caps.presence(user, s.jid, s.presence!);
  });
};

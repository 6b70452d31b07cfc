// XEP-0313 Message Archive Management for users, with XEP-0359 stanza ids
// and XEP-0441 preferences. Every one-to-one message a user sends or
// receives that is worth keeping (a body, or an encrypted or other
// conversation payload) is archived once in the user's archive, whoever the
// other side is: a local user, a contact on another server, or an MSN
// contact through msn.<domain>. The archive id is stamped on the stanza as
// <stanza-id by='user'/> before delivery, so the delivered message, its
// carbons, the offline copy and the MAM result all carry the same id.
//
// Incoming messages are archived on `message/bare|full` (after blocking,
// before delivery) when the user has a session, and otherwise on
// `message/offline` (which the message module fires only for existing
// accounts); sent ones on `pre-message/*` before carbons copy them, and the
// sender's own stanza-id is removed again before the message leaves (it
// means nothing to the recipient). Decisions are synchronous: preferences
// are in memory, and so are the roster contacts of users archiving by roster.
import type { Module, StanzaEvent } from '../host/host.ts';
import { sentByUser } from '../host/session.ts';
import { sendResult } from '../host/iq-result.ts';
import { carbonsWanted } from './carbons.ts';
import { Jid } from '../jid/jid.ts';
import { readMamQuery, queryForm } from '../mam/query.ts';
import { archiveMetadata, serveQuery } from '../mam/serve.ts';
import { addStanzaId, stanzaIdBy, stripStanzaIds } from '../mam/stanza-id.ts';
import { type ArchiveId, newArchiveId } from '../storage/archive-id.ts';
import { type ArchiveDefault, type MamPrefs, MamPrefsStore } from '../storage/mam-prefs.ts';
import { RosterStore } from '../storage/roster.ts';
import { type Element, el, firstChild } from '../xml/element.ts';
import { xmlString } from '../xml/serialize.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

/** The store name of users' archives (also listed in storage/user-data.ts). */
export const USER_ARCHIVE = 'mam';
const DAY = 24 * 3600 * 1000;

// Payloads that make a message part of a conversation without a <body/>
// (XEP-0313 §5.1.1 leaves the choice to the server): end-to-end encrypted
// messages, reactions, retractions, read markers, invitations.
const KEPT_PAYLOADS = new Set([
  'encrypted eu.siacs.conversations.axolotl',
  'encrypted urn:xmpp:omemo:2',
  'openpgp urn:xmpp:openpgp:0',
  'x jabber:x:encrypted',
  'reactions urn:xmpp:reactions:0',
  'retract urn:xmpp:message-retract:1',
  'apply-to urn:xmpp:fasten:0',
  'displayed urn:xmpp:chat-markers:0',
  'x jabber:x:conference',
]);

/** Chat and normal messages with a body or a conversation payload, unless hinted not to (XEP-0334). */
export function worthArchiving(stanza: Element): boolean {
  const type = stanza.attrs.type ?? 'normal';
  if (type !== 'chat' && type !== 'normal') return false;
  let keep = false;
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    const ns = c.attrs.xmlns;
    if (ns === NS.hints) {
      if (c.name === 'no-store' || c.name === 'no-permanent-store') return false;
      if (c.name === 'store') keep = true;
    } else if (c.name === 'body' && ns === undefined) keep = true;
    else if (!keep && KEPT_PAYLOADS.has(`${c.name} ${ns}`)) keep = true;
  }
  return keep;
}

export const mamModule: Module = async (host) => {
  const { server } = host;
  const cfg = server.config.mam;
  if (!cfg.enabled) return;
  const archive = server.storage.archive(USER_ARCHIVE);
  const prefsStore = server.store(MamPrefsStore);
  const rosters = server.store(RosterStore);
  await prefsStore.load();
  host.accountFeatures.add(NS.mam);
  host.accountFeatures.add(NS.mamExtended);
  host.accountFeatures.add(NS.sid);

  // Roster contacts of the users whose default is `roster`, kept current.
  const rosterViews = new Map<string, Set<string>>();
  const watchRoster = async (user: string) => {
    if (rosterViews.has(user)) return;
    const roster = await rosters.get(user);
    rosterViews.set(user, new Set(roster.items.keys()));
  };
  // Changed here or, in a cluster, on another node (then read again for the users viewed here only).
  rosters.onChange(
    (user, roster) => {
      if (rosterViews.has(user)) rosterViews.set(user, new Set(roster.items.keys()));
    },
    (user) => rosterViews.has(user),
  );
  // Preferences changed here or on another node: the roster view exists before the first message is judged by it.
  prefsStore.onChange(async (user, next) => {
    if (next?.default === 'roster' || (next === undefined && cfg.default === 'roster')) await watchRoster(user);
    else if (cfg.default !== 'roster') rosterViews.delete(user);
  });
  if (cfg.default === 'roster') {
    for await (const local of server.accounts.users()) await watchRoster(`${local}@${host.name}`);
  }
  for (const user of prefsStore.usersWithDefault('roster')) await watchRoster(user);

  const modeOf = (user: string): ArchiveDefault => prefsStore.get(user)?.default ?? cfg.default;

  /** XEP-0441 §3: `never` wins over `always`; a bare listed JID matches every resource. */
  const shouldArchive = (user: string, other: Jid): boolean => {
    const p = prefsStore.get(user);
    if (p) {
      if (listed(p.never, other)) return false;
      if (listed(p.always, other)) return true;
    }
    const mode = p?.default ?? cfg.default;
    if (mode === 'always') return true;
    if (mode === 'never') return false;
    return rosterViews.get(user)?.has(other.bare) ?? false;
  };

  // The text and id archived for the sender, kept for the recipient's
  // archive: a message between two local users is serialised once, not
  // twice, and has one id in both archives (XEP-0359 asks an id to be unique
  // for its `by`, which each archive's is). Taken before either stamp, and
  // not used if the recipient's side removed anything (a forged id), so both
  // archives hold what was delivered. The recipient's side runs right after
  // the sender's, in the same call from the router, so one slot is enough.
  let sent: { stanza: Element; xml: string; made: ArchiveId } | null = null;

  // Appends gathered into one write share its promise: a failure is logged
  // once per write, not once per message (and no handler is made per message).
  // The method is taken once: the storage seam hands out a tracking wrapper
  // through a proxy, a lookup per message otherwise.
  const append = archive.append;
  let lastWrite: Promise<void> | null = null;
  const store = (user: string, other: Jid, stanza: Element, made: ArchiveId, xml: string, stamp = true) => {
    if (stamp) addStanzaId(stanza, user, made.id);
    const write = append(user, { id: made.id, when: made.when, with: other.bare, xml });
    if (write !== lastWrite) {
      lastWrite = write;
      write.catch((err) => host.log.error('archive write failed', { user, error: String(err) }));
    }
  };

  const incoming = (event: StanzaEvent, changed: boolean) => {
    const { stanza, to, from } = event;
    const shared = !changed && sent?.stanza === stanza ? sent : null;
    sent = null;
    if (shared) {
      // Judged worth archiving on the way out; the recipient's entry shares the sender's text and id.
      if (shouldArchive(to.bare, from)) store(to.bare, from, stanza, shared.made, shared.xml);
    } else if (worthArchiving(stanza) && shouldArchive(to.bare, from)) {
      store(to.bare, from, stanza, newArchiveId(), xmlString(stanza));
    }
  };

  // A message for a local user: ids claiming to be the user's are removed
  // whatever happens next; archived now if the user has a session (so the
  // account exists), else by message/offline once existence is checked.
  const inbound = (event: StanzaEvent) => {
    const changed = stripStanzaIds(event.stanza, event.to.bare);
    if (server.sessions.has(event.to.bare)) incoming(event, changed);
    return false;
  };
  host.hook('message/bare', inbound, 50);
  host.hook('message/full', inbound, 50);
  // Above the offline module (0), which stores the stamped stanza.
  host.hook(
    'message/offline',
    (event: StanzaEvent) => {
      // Not yet judged if it carries no id of the user's (any forged one was removed on arrival).
      if (!stanzaIdBy(event.stanza, event.to.bare)) incoming(event, true);
      return false;
    },
    10,
  );

  // A message a local user sends: archived (and stamped for the carbons) here...
  const outbound = (event: StanzaEvent) => {
    const { stanza, origin, from, to } = event;
    if (!sentByUser(origin) || from.bare === to.bare) return false;
    stripStanzaIds(stanza, from.bare);
    if (worthArchiving(stanza) && shouldArchive(from.bare, to)) {
      const made = newArchiveId();
      const xml = xmlString(stanza);
      // The sender's own stanza-id is for the copies its other resources get (carbons); none, no stamp.
      store(from.bare, to, stanza, made, xml, carbonsWanted(server, from.bare, origin));
      sent = { stanza, xml, made };
    }
    return false;
  };
  // ...and the stamp removed after carbons (-1) copied it, before delivery.
  const unstamp = (event: StanzaEvent) => {
    if (sentByUser(event.origin)) stripStanzaIds(event.stanza, event.from.bare);
    return false;
  };
  for (const type of ['bare', 'full', 'host']) {
    host.hook(`pre-message/${type}`, outbound, 0);
    host.hook(`pre-message/${type}`, unstamp, -2);
  }

  // ---- Queries, preferences, metadata: one's own archive only ----

  const pageSize = { default: cfg.pageSize, max: cfg.maxPageSize };
  host.hook(`iq-set/self/${NS.mam}:query`, async (event: StanzaEvent) => {
    const query = readMamQuery(firstChild(event.stanza)!);
    const session = event.origin.kind === 'c2s' ? event.origin.session : undefined;
    const fin = await serveQuery({
      archive,
      owner: event.to.bare,
      query,
      pageSize,
      to: event.from.toString(),
      from: event.stanza.attrs.to,
      // Results go straight to the asking session, ahead of the iq result.
      send: (m) => (session ? session.send(m) : server.router.route(m)),
      onBadEntry: (entry, err) =>
        host.log.error('unreadable archive entry', { user: event.to.bare, id: entry.id, error: String(err) }),
    });
    sendResult(event, fin);
  });
  host.hook(`iq-get/self/${NS.mam}:query`, (event: StanzaEvent) => {
    sendResult(event, queryForm());
    return true;
  });
  host.hook(`iq-get/self/${NS.mam}:metadata`, async (event: StanzaEvent) => {
    sendResult(event, await archiveMetadata(archive, event.to.bare));
  });
  host.hook(`iq-get/self/${NS.mam}:prefs`, (event: StanzaEvent) => {
    const user = event.to.bare;
    sendResult(event, prefsElement(prefsStore.get(user) ?? { default: modeOf(user), always: [], never: [] }));
    return true;
  });
  host.hook(`iq-set/self/${NS.mam}:prefs`, async (event: StanzaEvent) => {
    const user = event.to.bare;
    const prefs = readPrefs(firstChild(event.stanza)!, server.config.limits.rosterMaxItems);
    await prefsStore.set(user, prefs);
    sendResult(event, prefsElement(prefs));
  });
  // Other users' archives are private (XEP-0313 §8).
  for (const name of ['query', 'prefs', 'metadata']) {
    for (const kind of ['get', 'set']) {
      host.hook(`iq-${kind}/bare/${NS.mam}:${name}`, () => Promise.reject(new StanzaError('forbidden', 'not your archive')));
    }
  }

  // ---- Retention: expiry in the background ----

  if (cfg.retention > 0) {
    let running = false;
    const expire = async () => {
      if (running) return;
      running = true;
      try {
        const removed = await archive.expire(Date.now() - cfg.retention * DAY);
        if (removed) host.log.info('archive expiry', { removed });
      } catch (err) {
        host.log.error('archive expiry failed', { error: String(err) });
      } finally {
        running = false;
      }
    };
    const timer = setInterval(expire, cfg.expiryInterval * 1000);
    timer.unref();
    // A first run soon after start, not a whole interval later.
    const first = setTimeout(expire, Math.min(cfg.expiryInterval * 1000, 60_000));
    first.unref();
    host.onStop(async () => {
      clearInterval(timer);
      clearTimeout(first);
    });
  }
};

function listed(list: string[], jid: Jid): boolean {
  if (list.length === 0) return false;
  return list.includes(jid.bare) || (jid.resource !== '' && list.includes(jid.toString()));
}

function prefsElement(p: MamPrefs): Element {
  const jids = (list: string[]) => list.map((j) => el('jid', null, j));
  return el(
    'prefs',
    { xmlns: NS.mam, default: p.default },
    el('always', null, ...jids(p.always)),
    el('never', null, ...jids(p.never)),
  );
}

function readPrefs(prefs: Element, maxItems: number): MamPrefs {
  const mode = prefs.attrs.default;
  if (mode !== 'always' && mode !== 'never' && mode !== 'roster') {
    throw new StanzaError('bad-request', "default must be 'always', 'never' or 'roster'");
  }
  const jids = (name: string): string[] => {
    const list = prefs.getChild(name);
    const out = new Set<string>();
    for (const j of list?.getChildren('jid') ?? []) {
      const jid = Jid.tryParse(j.getText().trim());
      if (!jid) throw new StanzaError('jid-malformed', `not a JID: ${j.getText()}`);
      out.add(jid.toString());
    }
    if (out.size > maxItems) throw new StanzaError('policy-violation', `at most ${maxItems} JIDs per list`);
    return [...out];
  };
  return { default: mode, always: jids('always'), never: jids('never') };
}

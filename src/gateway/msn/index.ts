// The transport host's module: hooks every stanza addressed to
// msn.<domain>, its contact JIDs (`friend%hotmail.com@msn.<domain>`) and its
// rooms (`room@msn.<domain>/nick`), and routes them to the user's session.
import type { Module, StanzaEvent } from '../../host/host.ts';
import { sendResult } from '../../host/iq-result.ts';
import { Jid } from '../../jid/jid.ts';
import { MsnError } from '../../msnp/index.ts';
import { clone, el, firstChild } from '../../xml/element.ts';
import { StanzaError } from '../../xml/errors.ts';
import { NS } from '../../xml/namespaces.ts';
import { emailToJid, isMsnAddress } from './address.ts';
import { onContactMessage } from './contact-message.ts';
import { contactVcard } from './contact-vcard.ts';
import { MsnGateway, type UserServerFactory } from './gateway.ts';
import { LocalUserServer } from './local-user-server.ts';
import { followOwnPep } from './own-pep.ts';
import { NOT_CONFIGURED, register, registrationForm } from './registration.ts';
import { RemoteUserServer } from './remote-user-server.ts';
import { statusValue } from './status.ts';
import { UserSession } from './user-session.ts';
import { detached } from '../../stream/inbound-context.ts';

const FEATURES = [
  NS.discoInfo,
  NS.discoItems,
  NS.register,
  NS.gateway,
  NS.vcard,
  NS.muc,
  NS.chatStates,
  NS.events,
  'urn:xmpp:ping',
];

/** What a contact JID supports (disco#info): receipts come from switchboard ACKs, attention is a nudge. */
const CONTACT_FEATURES = [NS.discoInfo, NS.vcard, NS.chatStates, NS.events, NS.receipts, NS.attention];

/** The transport inside jabberfly: its users' rosters and vCards in-process. */
export const msnGateway: Module = (host) =>
  msnGatewayModule((gw) => new LocalUserServer(gw, new RemoteUserServer(gw)))(host);

/** The transport module, reaching users' rosters and vCards through `users`. */
export const msnGatewayModule = (users: UserServerFactory): Module => (host) => {
  const gw = new MsnGateway(host, users);
  const { server } = gw;
  // The name clients show in service discovery says when it cannot work yet.
  const name = gw.configured ? 'MSN Transport' : 'MSN Transport (not configured: msn.server is unset)';
  host.identities.push({ category: 'gateway', type: 'msn', name });
  server.statusSections.add('msn', () => ({
    ...gw.state(),
    server: server.config.msn.server || 'not configured (set msn.server)',
    users: gw.userStates().map(statusValue),
  }));
  for (const f of FEATURES) host.features.add(f);
  host.onStop(async () => {
    await Promise.all([...gw.sessions.values()].map((s) => s.close()));
  });
  // PEP: the user's avatar and nick reach MSN; contacts' pictures and names answer as XEP-0084/0172.
  followOwnPep(gw);
  host.hook(`iq-get/bare/${NS.pubsub}:pubsub`, (e) => gw.contactPep.request(e));

  const session = (from: Jid) => gw.sessions.get(from.bare);
  const isRoom = (jid: Jid) => !jid.local.includes('%');

  // --- the gateway itself --------------------------------------------------
  host.hook('iq-get/host/jabber:iq:register:query', async (e) => sendResult(e, await registrationForm(gw, e.from.toBare())));
  host.hook('iq-set/host/jabber:iq:register:query', (e) => register(gw, e, firstChild(e.stanza)!));

  // XEP-0100 §6.3: the prompt is an MSN address; the answer its JID here.
  host.hook('iq-get/host/jabber:iq:gateway:query', (e) => {
    sendResult(
      e,
      el('query', { xmlns: NS.gateway }, el('desc', null, 'Enter the MSN address of the contact'), el('prompt', null, 'MSN Address')),
    );
    return true;
  });
  host.hook('iq-set/host/jabber:iq:gateway:query', (e) => {
    const prompt = firstChild(e.stanza)!.getChildText('prompt')?.trim() ?? '';
    if (!isMsnAddress(prompt)) return Promise.reject(new StanzaError('not-acceptable', `'${prompt}' is not an MSN address`));
    const jid = emailToJid(prompt, gw.domain);
    sendResult(e, el('query', { xmlns: NS.gateway }, el('jid', null, jid), el('prompt', null, jid)));
    return true;
  });

  host.hook('iq-get/host/http://jabber.org/protocol/disco#info:query', (e) => {
    const node = firstChild(e.stanza)!.attrs.node;
    if (node) return Promise.reject(new StanzaError('item-not-found'));
    sendResult(
      e,
      el(
        'query',
        { xmlns: NS.discoInfo },
        ...host.identities.map((i) => el('identity', { category: i.category, type: i.type, name: i.name })),
        ...[...host.features].sort().map((f) => el('feature', { var: f })),
      ),
    );
    return true;
  });
  host.hook('iq-get/host/http://jabber.org/protocol/disco#items:query', (e) => {
    sendResult(e, el('query', { xmlns: NS.discoItems }));
    return true;
  });
  host.hook('iq-get/host/urn:xmpp:ping:ping', (e) => {
    sendResult(e);
    return true;
  });

  // Presence to the gateway: the user's status, which logs in and out of MSN.
  host.hook('presence/host', (e) => onGatewayPresence(e));

  // Cluster: a user's MSN login lives on the user's home node, where their
  // stanzas to the transport are handled. A session resumed on another node
  // takes the home with it: the old home logs out without telling the user
  // (nothing changed for them), the new one logs in with the presence the
  // user's resources have, as their presence would have (a second login of
  // the same account replaces the first on MSN anyway).
  const userHost = server.hosts.get(server.config.domain);
  userHost?.sessionEvents.hook('user-home-left', ({ session: left }) => {
    const s = gw.sessions.get(left.jid.bare);
    if (s) void s.leave();
  });
  userHost?.sessionEvents.hook('user-home-gained', ({ session: gained }) => {
    const bare = gained.jid.bare;
    if (gw.sessions.has(bare)) return;
    for (const r of server.sessions.available(bare)) {
      const presence = clone(r.presence!);
      presence.attrs.from = r.jid.toString();
      presence.attrs.to = gw.domain;
      void onGatewayPresence({ stanza: presence, origin: { kind: 'server' }, host, to: Jid.of('', gw.domain), from: r.jid }).catch((err) =>
        host.log.warn('MSN login on a new home node failed', { user: bare, error: String(err) }),
      );
    }
  });

  async function onGatewayPresence(e: StanzaEvent): Promise<void> {
    const { stanza, from } = e;
    const type = stanza.attrs.type;
    const user = from.toBare();
    if (type === 'probe') {
      const s = session(from);
      gw.send(el('presence', { from: gw.domain, to: from.toString(), type: s?.online ? undefined : 'unavailable' }));
      return;
    }
    if (type === 'subscribe') {
      // Only registered users get the gateway's presence.
      const registered = (await gw.registrations.get(user.bare)) !== undefined;
      gw.send(el('presence', { from: gw.domain, to: user.bare, type: registered ? 'subscribed' : 'unsubscribed' }));
      return;
    }
    if (type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed' || type === 'error') return;
    if (type === 'unavailable') {
      const s = session(from);
      if (s?.unavailableFrom(from)) await s.close();
      return;
    }
    // Available, or invisible (XEP-0186 / <presence type='invisible'/>): logged in to MSN either way.
    if (type !== undefined && type !== 'invisible') return;
    let s = session(from);
    if (!s) {
      const reg = await gw.registration(user.bare);
      if (!reg) return;
      if (!gw.configured) {
        gw.send(el('presence', { from: gw.domain, to: from.toString(), type: 'unavailable' }, el('status', null, NOT_CONFIGURED)));
        return;
      }
      // Presence may race with another resource's: the first one creates the session.
      s = session(from);
      if (!s) {
        s = new UserSession(gw, user, reg);
        gw.sessions.set(user.bare, s);
        gw.loginStarted(user.bare);
        s.presenceFrom(from, stanza);
        // The MSN login outlives this stanza: its sockets must not carry its
        // context (stream/inbound-context.ts).
        const started = s;
        await detached(() => started.start()).catch(() => {});
        return;
      }
    }
    s.presenceFrom(from, stanza);
    if (s.online) {
      s.sendGatewayPresence(from.toString());
      s.sendAllContactPresences(from.toString());
    }
  }

  // --- contact JIDs and rooms -------------------------------------------------
  host.hook('presence/bare', (e) => (isRoom(e.to) ? onBareRoomPresence(e) : onContactPresence(e)));
  host.hook('presence/full', (e) =>
    isRoom(e.to) ? withSession(e, (s) => s.groupchats.presence(e.from, e.to, e.stanza)) : onContactPresence(e),
  );

  /** A join needs a nickname (XEP-0045 §7.2.1: jid-malformed); other presence to a bare room means nothing. */
  function onBareRoomPresence(e: StanzaEvent): true | Promise<never> {
    if (e.stanza.attrs.type === undefined) {
      return Promise.reject(new StanzaError('jid-malformed', 'join a room with room@host/nick'));
    }
    return true;
  }

  async function onContactPresence(e: StanzaEvent): Promise<void> {
    const email = gw.emailOf(e.to);
    const type = e.stanza.attrs.type;
    if (!email) return;
    const s = session(e.from);
    if (type === 'probe') {
      if (s) s.answerProbe(email, e.from.toString());
      else gw.send(el('presence', { type: 'unavailable', from: gw.contactJid(email), to: e.from.toString() }));
      return;
    }
    if (!s?.online) return;
    // Subscription changes map onto the MSN lists (XEP-0100 §5).
    switch (type) {
      case 'subscribe':
        // MSN needs no approval to watch a contact: approve at once, then
        // put the contact on the forward list (and revert if MSN refuses).
        gw.send(el('presence', { type: 'subscribed', from: gw.contactJid(email), to: e.from.bare }));
        try {
          await s.msn.addContact(email, 'FL').catch(ignoreExisting);
        } catch (err) {
          gw.send(el('presence', { type: 'unsubscribed', from: gw.contactJid(email), to: e.from.bare }));
          throw new StanzaError('item-not-found', `MSN refused to add ${email}: ${(err as Error).message}`);
        }
        break;
      case 'subscribed':
        await s.msn.allow(email).catch(ignoreExisting);
        break;
      case 'unsubscribed':
        await s.msn.block(email).catch(ignoreExisting);
        break;
      case 'unsubscribe':
        await s.msn.removeContact(email, 'FL').catch(ignoreExisting);
        gw.send(el('presence', { type: 'unsubscribed', from: gw.contactJid(email), to: e.from.bare }));
        break;
      default:
      // Available/unavailable directed at a contact: MSN has no per-contact presence.
    }
  }

  host.hook('message/bare', (e) =>
    isRoom(e.to) ? withSession(e, (s) => s.groupchats.message(e.from, e.to, e.stanza)) : onContactMessage(gw, e),
  );
  // MSN switchboards have no private messages between occupants: say so
  // rather than drop the message (the router never bounces errors).
  host.hook('message/full', (e) => {
    if (!isRoom(e.to)) return onContactMessage(gw, e);
    server.router.bounce(e.stanza, 'feature-not-implemented', 'MSN rooms have no private messages');
    return true;
  });
  host.hook('message/host', (e) => e.stanza.attrs.type === 'error' || undefined);

  host.hook('iq-get/bare/vcard-temp:vCard', (e) => contactVcard(gw, e));
  host.hook('iq-get/bare/http://jabber.org/protocol/disco#info:query', (e) => {
    if (isRoom(e.to)) {
      sendResult(e, el('query', { xmlns: NS.discoInfo }, el('identity', { category: 'conference', type: 'text', name: e.to.local }), el('feature', { var: NS.muc })));
      return true;
    }
    sendResult(
      e,
      el(
        'query',
        { xmlns: NS.discoInfo },
        el('identity', { category: 'client', type: 'pc', name: gw.emailOf(e.to) ?? e.to.local }),
        ...CONTACT_FEATURES.map((f) => el('feature', { var: f })),
      ),
    );
    return true;
  });

  function withSession(e: StanzaEvent, work: (s: UserSession) => Promise<void>): Promise<void> {
    const s = session(e.from);
    if (!s?.online) return Promise.reject(new StanzaError('registration-required', 'log in to the MSN transport first'));
    return work(s);
  }
};

function ignoreExisting(err: unknown): void {
  // 215 (already on the list) / 216 (not on the list) mean the list is already right.
  if (err instanceof MsnError && (err.code === 215 || err.code === 216)) return;
  throw err;
}

// XEP-0077 In-Band Registration for accounts on this host.
// Before authentication (only while registration.open): the registration
// form and account creation, limited to registration.perIpPerHour new
// accounts per IP. When registration is closed the c2s default answers
// service-unavailable, as the XEP requires of a host without it. After
// authentication, always: password change (other sessions of the account
// are closed with a `reset` stream error, as Prosody does, so a stolen
// password stops working everywhere) and account removal (all data deleted,
// every session closed with `not-authorized`, XEP-0077 §3.2).
// Error replies never echo the request: it holds a password.
import type { Host, Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { Jid, JidError } from '../jid/jid.ts';
import { FastTokenStore } from '../storage/fast-tokens.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { type Element, el, firstChild } from '../xml/element.ts';
import { errorElement, StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { removeAccount } from './account-removal.ts';

const INSTRUCTIONS = 'Choose a username and password for use with this service.';
const HOUR = 60 * 60 * 1000;

export const registerModule: Module = (host) => {
  const config = host.server.config.registration;
  host.features.add(NS.register);

  host.featureEvents.hook('stream-features', (event) => {
    if (config.open && !event.session.authenticated)
      event.features.push(el('register', { xmlns: NS.registerFeature }));
  });

  const signup = new Signup(host);
  host.hook(`unauthenticated-iq/${NS.register}:query`, (event) => {
    if (!config.open) return false;
    return signup.handle(event).catch((err: unknown) => {
      if (err instanceof StanzaError) return errorIq(event.stanza, err);
      throw err;
    });
  });

  const account = (type: 'get' | 'set') => (event: StanzaEvent) => {
    const { origin } = event;
    // Only the account's own client manages it, whether it addressed the
    // request to its bare JID, to nobody or to the server.
    if (origin.kind !== 'c2s' || origin.session.jid.domain !== host.name) return false;
    const work = type === 'get' ? registeredForm(event) : manageAccount(host, event);
    return work.catch((err: unknown) => {
      if (!(err instanceof StanzaError)) throw err;
      host.server.router.route(errorIq(event.stanza, err, event.to.toString()));
    });
  };
  for (const to of ['self', 'host']) {
    host.hook(`iq-get/${to}/${NS.register}:query`, account('get'));
    host.hook(`iq-set/${to}/${NS.register}:query`, account('set'));
  }
};

/** Account creation before authentication, with the per-IP rate limit. */
class Signup {
  private readonly creating = new KeyedMutex();
  /** Registration times in the last hour, per IP. */
  private readonly recent = new Map<string, number[]>();

  constructor(private readonly host: Host) {}

  async handle(event: StanzaEvent): Promise<Element | undefined> {
    const { stanza } = event;
    const query = firstChild(stanza)!;
    if (stanza.attrs.type === 'get') {
      return el(
        'iq',
        { type: 'result', id: stanza.attrs.id },
        el(
          'query',
          { xmlns: NS.register },
          el('instructions', null, INSTRUCTIONS),
          el('username'),
          el('password'),
        ),
      );
    }
    if (stanza.attrs.type !== 'set') return undefined;
    if (query.getChild('remove'))
      throw new StanzaError('registration-required', 'log in to remove an account');
    const username = query.getChildText('username') ?? '';
    const password = query.getChildText('password') ?? '';
    if (!username || !password)
      throw new StanzaError('not-acceptable', 'a username and a password are required');
    const user = localpart(username, this.host.name);
    const ip = event.origin.kind === 'unauthenticated' ? event.origin.ip : '';
    const release = this.reserve(ip);
    try {
      await this.creating.run(user, async () => {
        const accounts = this.host.server.accounts;
        if (await accounts.exists(user)) throw new StanzaError('conflict', 'the username is taken');
        await accounts.setPassword(user, password);
      });
    } catch (err) {
      release();
      throw err;
    }
    this.host.log.info('account registered in-band', { user: `${user}@${this.host.name}`, ip });
    return el('iq', { type: 'result', id: stanza.attrs.id });
  }

  /** Takes one of the IP's registrations for this hour; returns its undo. */
  private reserve(ip: string): () => void {
    const now = Date.now();
    for (const [key, times] of this.recent) {
      const fresh = times.filter((t) => now - t < HOUR);
      if (fresh.length) this.recent.set(key, fresh);
      else this.recent.delete(key);
    }
    const times = this.recent.get(ip) ?? [];
    if (times.length >= this.host.server.config.registration.perIpPerHour) {
      throw new StanzaError(
        'policy-violation',
        'too many registrations from this address, try later',
        'wait',
      );
    }
    times.push(now);
    this.recent.set(ip, times);
    return () => {
      const i = times.indexOf(now);
      if (i >= 0) times.splice(i, 1);
    };
  }
}

async function registeredForm(event: StanzaEvent): Promise<void> {
  const query = el(
    'query',
    { xmlns: NS.register },
    el('registered'),
    el('username', null, event.from.local),
    el('password'),
  );
  sendResult(event, query);
}

async function manageAccount(host: Host, event: StanzaEvent): Promise<void> {
  const query = firstChild(event.stanza)!;
  const children = query.getChildElements();
  if (query.getChild('remove')) {
    if (children.length !== 1) throw new StanzaError('bad-request', '<remove/> must be alone');
    return removeAccountInBand(host, event);
  }
  const username = query.getChildText('username');
  const password = query.getChildText('password');
  // An empty password must never replace the current one (XEP-0077 §3.3).
  if (!username || !password)
    throw new StanzaError('bad-request', 'a username and a new password are required');
  const user = event.from.local;
  if (localpart(username, host.name, 'bad-request') !== user) {
    throw new StanzaError('bad-request', 'you can only change your own password');
  }
  await host.server.accounts.setPassword(user, password);
  // The FAST tokens logged in with the old password go too (XEP-0484).
  await host.server.store(FastTokenStore).revokeAll(event.from.bare);
  sendResult(event);
  host.log.info('password changed', { user: event.from.bare });
  const origin = event.origin.kind === 'c2s' ? event.origin.session : undefined;
  for (const s of host.server.sessions.resources(event.from.bare)) {
    if (s !== origin) s.close('reset', 'password changed');
  }
}

async function removeAccountInBand(host: Host, event: StanzaEvent): Promise<void> {
  const bare = event.from.bare;
  await removeAccount(host.server, bare);
  host.log.info('account removed in-band', { user: bare });
  sendResult(event);
  for (const s of host.server.sessions.resources(bare)) s.close('not-authorized', 'account removed');
}

/** The normalised localpart for a requested username, or a stanza error. */
function localpart(
  username: string,
  domain: string,
  condition: 'not-acceptable' | 'bad-request' = 'not-acceptable',
): string {
  try {
    return Jid.of(username, domain).local;
  } catch (err) {
    if (err instanceof JidError) throw new StanzaError(condition, `invalid username: ${err.message}`);
    throw err;
  }
}

function errorIq(stanza: Element, err: StanzaError, from?: string): Element {
  return el(
    'iq',
    { type: 'error', id: stanza.attrs.id, to: stanza.attrs.from, from },
    errorElement(err.condition, err.text, err.type),
  );
}

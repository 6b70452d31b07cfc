// In-band registration with the transport (XEP-0077, XEP-0100 §4.1): the
// form, credential checks against MSN before anything is stored, the
// sealed password, re-registration, and <remove/> which logs out, forgets
// the account and takes the transport's contacts out of the user's roster.
import type { StanzaEvent } from '../../host/host.ts';
import { sendResult } from '../../host/iq-result.ts';
import type { Jid } from '../../jid/jid.ts';
import { MsnAuthError, MsnSession } from '../../msnp/index.ts';
import { trackDurable } from '../../storage/durability.ts';
import { type Element, el } from '../../xml/element.ts';
import { StanzaError } from '../../xml/errors.ts';
import { NS } from '../../xml/namespaces.ts';
import { isMsnAddress } from './address.ts';
import type { MsnGateway } from './gateway.ts';

const INSTRUCTIONS = 'Enter your MSN address (e.g. you@hotmail.com) and password.';
/** Shown instead, and as the refusal, while msn.server is unset. */
export const NOT_CONFIGURED =
  'This MSN transport is not set up yet: the server administrator must set msn.server in the ' +
  "server's configuration to a live MSN service (host:port). Registration is not possible until then.";

/** The registration form, filled with the current address when registered. */
export async function registrationForm(gw: MsnGateway, user: Jid): Promise<Element> {
  if (!gw.mayRegister(user)) throw new StanzaError('not-allowed', 'this transport serves local users only');
  const reg = await gw.registrations.get(user.bare);
  const direct = reg?.directRosterSync ?? gw.users.managesRoster(user);
  const instructions = gw.configured ? INSTRUCTIONS : NOT_CONFIGURED;
  return el(
    'query',
    { xmlns: NS.register },
    reg ? el('registered') : null,
    el('instructions', null, instructions),
    el('username', null, reg?.email ?? null),
    el('password'),
    el(
      'x',
      { xmlns: NS.dataForms, type: 'form' },
      el('title', null, 'MSN Transport registration'),
      el('instructions', null, instructions),
      el('field', { type: 'hidden', var: 'FORM_TYPE' }, el('value', null, NS.register)),
      el('field', { type: 'text-single', var: 'username', label: 'MSN address' }, el('required'), reg ? el('value', null, reg.email) : null),
      el('field', { type: 'text-private', var: 'password', label: 'Password' }, el('required')),
      el(
        'field',
        { type: 'boolean', var: 'directsync', label: 'Put my MSN contacts in my roster automatically' },
        el('value', null, direct ? '1' : '0'),
      ),
    ),
  );
}

interface Submitted {
  email: string;
  password: string;
  directRosterSync: boolean | undefined;
}

/** Reads either the plain fields or the data form. */
function submitted(query: Element): Submitted {
  const form = query.getChild('x', NS.dataForms);
  const field = (name: string) =>
    form
      ?.getChildren('field')
      .find((f) => f.attrs.var === name)
      ?.getChildText('value') ?? undefined;
  const email = (form ? field('username') : query.getChildText('username'))?.trim() ?? '';
  const password = (form ? field('password') : query.getChildText('password')) ?? '';
  const ds = form ? field('directsync') : undefined;
  return { email, password, directRosterSync: ds === undefined ? undefined : ds === '1' || ds === 'true' };
}

export async function register(gw: MsnGateway, event: StanzaEvent, query: Element): Promise<void> {
  const user = event.from.toBare();
  if (!gw.mayRegister(user)) throw new StanzaError('not-allowed', 'this transport serves local users only');
  if (query.getChild('remove')) return unregister(gw, event);
  if (!gw.configured) throw new StanzaError('service-unavailable', NOT_CONFIGURED, 'cancel');
  const { email, password, directRosterSync } = submitted(query);
  if (!email || !password) throw new StanzaError('not-acceptable', 'an MSN address and a password are required');
  if (!isMsnAddress(email)) throw new StanzaError('not-acceptable', `'${email}' is not an MSN address`);
  // A running session would be thrown out by the check's own login (OUT OTH).
  await gw.sessions.get(user.bare)?.close();
  // The registration is written only after this network check: until then
  // the client's later replies wait too, so none can overtake the write
  // (storage/durability.ts).
  await trackDurable(checkCredentials(gw, email, password));
  const previous = await gw.registrations.get(user.bare);
  await gw.registrations.set(user.bare, {
    email: email.toLowerCase(),
    passwordSealed: gw.box.seal(password),
    directRosterSync: gw.isLocalUser(user) && (directRosterSync ?? previous?.directRosterSync ?? true),
    registered: new Date().toISOString(),
  });
  sendResult(event);
  gw.host.log.info('registered', { user: user.bare, email });
  await addGatewayToRoster(gw, user);
}

/** Logs in once to MSN with the given credentials, then out again. */
async function checkCredentials(gw: MsnGateway, email: string, password: string): Promise<void> {
  const probe = new MsnSession({ ...gw.msnOptions(email, password), reconnect: { enabled: false } });
  probe.on('error', () => {});
  try {
    await probe.login();
  } catch (err) {
    if (err instanceof MsnAuthError) throw new StanzaError('not-authorized', 'MSN refused this address or password');
    throw new StanzaError('remote-server-timeout', `MSN could not be reached: ${(err as Error).message}`);
  } finally {
    await probe.logout().catch(() => {});
  }
}

/**
 * The gateway becomes a roster contact with subscription both: written by
 * the gateway where it manages the user's roster (in-process, or XEP-0356),
 * asked for with subscribe presences otherwise. The user's presence then
 * reaches the gateway, which logs in.
 */
async function addGatewayToRoster(gw: MsnGateway, user: Jid): Promise<void> {
  if (gw.users.managesRoster(user)) {
    await gw.users.editRoster(user, (roster) => {
      const item = roster.items.get(gw.domain) ?? { jid: gw.domain, subscription: 'none' as const, groups: [] };
      item.name ??= 'MSN Transport';
      item.subscription = 'both';
      delete item.ask;
      roster.items.set(gw.domain, item);
    });
    gw.users.requestPresence(user);
    return;
  }
  gw.send(el('presence', { type: 'subscribe', from: gw.domain, to: user.bare }));
  gw.send(el('presence', { type: 'subscribed', from: gw.domain, to: user.bare }));
}

async function unregister(gw: MsnGateway, event: StanzaEvent): Promise<void> {
  const user = event.from.toBare();
  const reg = await gw.registrations.get(user.bare);
  if (!reg) throw new StanzaError('registration-required', 'you are not registered');
  await gw.sessions.get(user.bare)?.close();
  await gw.registrations.delete(user.bare);
  gw.userStatus.delete(user.bare);
  sendResult(event);
  gw.host.log.info('unregistered', { user: user.bare });
  const ours = (jid: string) => jid === gw.domain || jid.endsWith(`@${gw.domain}`);
  if (gw.users.managesRoster(user)) {
    await gw.users.editRoster(user, (roster) => {
      for (const jid of [...roster.items.keys()]) if (ours(jid)) roster.items.delete(jid);
      for (const jid of [...roster.pending.keys()]) if (ours(jid)) roster.pending.delete(jid);
    });
    return;
  }
  // Otherwise: ask the user's server to drop the gateway.
  gw.send(el('presence', { type: 'unsubscribe', from: gw.domain, to: user.bare }));
  gw.send(el('presence', { type: 'unsubscribed', from: gw.domain, to: user.bare }));
}

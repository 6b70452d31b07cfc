// Push notifications (XEP-0357). A client registers an "XMPP Push Service"
// (its app server: a pubsub service, usually on another server) with a node
// for its device and the publish options the app server wants back (a
// secret). When a message arrives for the user and the resource that
// registered cannot take it live (no session bound, or its session is held
// by stream management, XEP-0198, waiting to be resumed), the user's bare
// JID publishes a summary to that node: message count since the client was
// last bound, the last sender, the body only with push.includeBody (it would
// pass through the app server and its vendor's push service). The app
// server's error answers remove the registration (XEP-0357 §8: cancel, auth
// and modify at once, wait and timeouts after push.maxTransientErrors in a
// row).
import type { Host, Module, StanzaEvent } from '../host/host.ts';
import { IqCaller } from '../host/iq-caller.ts';
import { sendResult } from '../host/iq-result.ts';
import { Jid } from '../jid/jid.ts';
import { type PushRegistration, PushStore } from '../storage/push.ts';
import { buildForm, findForm } from '../xml/data-form.ts';
import { type Element, el, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

/** Payloads that make a message worth waking a phone for, besides a body. */
const IMPORTANT_PAYLOADS = new Set([
  'eu.siacs.conversations.axolotl', // OMEMO
  'urn:xmpp:openpgp:0',
  'urn:xmpp:jingle-message:0', // a call
]);

/** Per registration, in memory: what the next notification says and how often it may go. */
interface Pending {
  /** The registration's resource (its count starts over when that resource binds). */
  resource: string;
  count: number;
  /** Start of the current rate window (epoch ms) and notifications in it. */
  windowStart: number;
  sentInWindow: number;
  /** Transient errors in a row. */
  transientErrors: number;
}

export const pushModule: Module = async (host) => {
  const { server } = host;
  const config = server.config.push;
  if (!config.enabled) return;
  const store = server.store(PushStore);
  await store.load();
  const iq = new IqCaller(host, config.timeout * 1000);
  const pending = new Map<string, Pending>();
  const keyOf = (user: string, r: PushRegistration) => `${user}\u0000${r.jid}\u0000${r.node}`;
  host.accountFeatures.add(NS.push);
  // In a cluster, a registration made on another node reaches this one's memory too (storage/memory-entries.ts).

  host.hook(`iq-set/self/${NS.push}:enable`, (event: StanzaEvent) => {
    if (event.origin.kind !== 'c2s') return false;
    const session = event.origin.session;
    const enable = firstChild(event.stanza)!;
    const service = Jid.tryParse(enable.attrs.jid);
    if (!service) throw new StanzaError('jid-malformed', 'enable needs the push service JID');
    const node = enable.attrs.node ?? '';
    if (node.length > 1024) throw new StanzaError('not-acceptable', 'node too long');
    if (service.bare === event.from.bare || (service.local && service.domain === host.name && !service.resource)) {
      // Our own users are not push services; a loop through the user's own bare JID never ends.
      throw new StanzaError('not-acceptable', 'a push service is not one of our accounts');
    }
    if (config.allowedServices.length && !config.allowedServices.some((s) => s === service.toString() || s === service.domain)) {
      throw new StanzaError('not-allowed', 'push service not allowed on this server');
    }
    const form = findForm(enable);
    if (form && form.formType !== NS.pubsubPublishOptions) throw new StanzaError('bad-request', 'publish options form expected');
    const options: Array<[string, string[]]> = [];
    for (const f of form?.fields.values() ?? []) if (f.var !== 'FORM_TYPE') options.push([f.var, f.values.slice(0, 10)]);
    if (JSON.stringify(options).length > 4096) throw new StanzaError('not-acceptable', 'publish options too large');
    const reg: PushRegistration = { jid: service.toString(), node, options, resource: session.jid.resource, enabled: Date.now() };
    return store.enable(event.from.bare, reg, config.maxRegistrationsPerUser).then((ok) => {
      if (!ok) throw new StanzaError('policy-violation', `at most ${config.maxRegistrationsPerUser} push services per user`);
      pending.delete(keyOf(event.from.bare, reg));
      host.log.info('push enabled', { user: event.from.bare, service: reg.jid, resource: reg.resource });
      sendResult(event);
    });
  });

  host.hook(`iq-set/self/${NS.push}:disable`, (event: StanzaEvent) => {
    if (event.origin.kind !== 'c2s') return false;
    const disable = firstChild(event.stanza)!;
    const service = Jid.tryParse(disable.attrs.jid);
    if (!service) throw new StanzaError('jid-malformed', 'disable needs the push service JID');
    return store.disable(event.from.bare, service.toString(), disable.attrs.node).then((removed) => {
      host.log.info('push disabled', { user: event.from.bare, service: service.toString(), removed });
      sendResult(event);
    });
  });

  // A client that binds again sees its messages itself: its count starts over.
  host.sessionEvents.hook('resource-bind', ({ session }) => {
    const prefix = `${session.jid.bare}\u0000`;
    for (const [key, p] of pending) if (key.startsWith(prefix) && p.resource === session.jid.resource) pending.delete(key);
  });

  // A message for a user: registrations whose resource has no session at all.
  // After blocking (100) and the archive (50), before delivery (-1).
  const arriving = (event: StanzaEvent) => {
    const user = event.to.bare;
    if (!important(event.stanza) || store.get(user).length === 0) return false;
    for (const r of store.get(user)) {
      if (!server.sessions.get(Jid.of(event.to.local, event.to.domain, r.resource))) notify(user, r, event.from, event.stanza);
    }
    return false;
  };
  host.hook('message/bare', arriving, 40);
  host.hook('message/full', arriving, 40);

  // A message handed to a session held by stream management (c2s-session.ts).
  host.hook('message/held', (event: StanzaEvent) => {
    const user = event.to.bare;
    if (store.get(user).length === 0) return false;
    const message = unwrapCarbon(event.stanza);
    if (!message || !important(message)) return false;
    const from = Jid.tryParse(message.attrs.from) ?? event.from;
    for (const r of store.get(user)) if (r.resource === event.to.resource) notify(user, r, from, message);
    return false;
  });

  function notify(user: string, reg: PushRegistration, from: Jid, message: Element): void {
    const key = keyOf(user, reg);
    const now = Date.now();
    let p = pending.get(key);
    if (!p) {
      p = { resource: reg.resource, count: 0, windowStart: now, sentInWindow: 0, transientErrors: 0 };
      pending.set(key, p);
    }
    p.count++;
    if (now - p.windowStart >= 60_000) {
      p.windowStart = now;
      p.sentInWindow = 0;
    }
    if (p.sentInWindow >= config.maxPerMinute) return;
    p.sentInWindow++;
    const body = config.includeBody ? message.getChildText('body') : null;
    const summary = buildForm('submit', NS.pushSummary, [
      { var: 'message-count', values: [String(p.count)] },
      { var: 'last-message-sender', values: [from.toString()] },
      ...(body ? [{ var: 'last-message-body', values: [body.slice(0, 1000)] }] : []),
    ]);
    const pubsub = el(
      'pubsub',
      { xmlns: NS.pubsub },
      el('publish', { node: reg.node || undefined }, el('item', null, el('notification', { xmlns: NS.push }, summary))),
    );
    if (reg.options.length) {
      pubsub.cnode(
        el('publish-options', null, buildForm('submit', NS.pubsubPublishOptions, reg.options.map(([v, values]) => ({ var: v, values })))),
      );
    }
    const request = el('iq', { type: 'set', from: user, to: reg.jid }, pubsub);
    iq.request(request).then(
      () => {
        const now = pending.get(key);
        if (now) now.transientErrors = 0;
        host.log.debug('push notification sent', { user, service: reg.jid });
      },
      (err: unknown) => failed(host, user, reg, key, err),
    );
  }

  function failed(host: Host, user: string, reg: PushRegistration, key: string, err: unknown): void {
    const e = err instanceof StanzaError ? err : new StanzaError('internal-server-error');
    // No answer in time and wait-type errors may pass; anything else says this registration is dead.
    const transient = e.condition === 'remote-server-timeout' || e.type === 'wait';
    const p = pending.get(key);
    if (transient && p && ++p.transientErrors < config.maxTransientErrors) {
      host.log.info('push notification failed, will retry with the next message', { user, service: reg.jid, condition: e.condition });
      return;
    }
    pending.delete(key);
    store
      .disable(user, reg.jid, reg.node)
      .then(() => host.log.info('push registration removed after an error', { user, service: reg.jid, condition: e.condition }))
      .catch((error) => host.log.error('push registration removal failed', { user, error: String(error) }));
  }
};

/** Whether a message is one the user would want their phone woken for. */
function important(message: Element): boolean {
  const type = message.attrs.type ?? 'normal';
  if (type !== 'chat' && type !== 'normal') return false;
  if (message.getChild('body')) return true;
  return message.getChildElements().some((c) => IMPORTANT_PAYLOADS.has(c.attrs.xmlns ?? ''));
}

/** A received carbon's message (XEP-0280); sent carbons and the like are the user's own doing: null. */
function unwrapCarbon(stanza: Element): Element | null {
  if (stanza.getChild('sent', NS.carbons)) return null;
  const received = stanza.getChild('received', NS.carbons);
  if (!received) return stanza;
  return received.getChild('forwarded', NS.forward)?.getChild('message') ?? null;
}

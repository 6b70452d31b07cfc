// XEP-0012 Last Activity. To the host: the server's uptime. To a user's
// bare JID: how long ago the user's last resource went offline (0 while one
// is available) with the status of the final unavailable presence, only to
// the user and to contacts allowed to see their presence (subscription from
// or both); anyone else gets forbidden, as the XEP requires.
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { LastActivityStore } from '../storage/last-activity.ts';
import { RosterStore } from '../storage/roster.ts';
import { el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

const STATUS = 'last:status';

export const lastModule: Module = (host) => {
  const server = host.server;
  const store = server.store(LastActivityStore);
  host.features.add(NS.last);

  host.hook(`iq-get/host/${NS.last}:query`, (event) => {
    const uptime = Math.floor((Date.now() - server.startedAt) / 1000);
    sendResult(event, el('query', { xmlns: NS.last, seconds: uptime }));
    return true;
  });

  const userLast = async (event: StanzaEvent) => {
    const owner = event.to.bare;
    if (!(await server.accounts.exists(event.to.local))) throw new StanzaError('service-unavailable');
    if (owner !== event.from.bare) {
      const item = await server.store(RosterStore).getItem(owner, event.from.bare);
      if (item?.subscription !== 'from' && item?.subscription !== 'both') throw new StanzaError('forbidden');
    }
    if (server.sessions.available(owner).length > 0) {
      return sendResult(event, el('query', { xmlns: NS.last, seconds: 0 }));
    }
    const activity = await store.get(owner);
    if (!activity) throw new StanzaError('item-not-found', 'no logout recorded');
    const seconds = Math.max(0, Math.floor((Date.now() - activity.at) / 1000));
    sendResult(event, el('query', { xmlns: NS.last, seconds }, activity.status));
  };
  host.hook(`iq-get/self/${NS.last}:query`, userLast);
  host.hook(`iq-get/bare/${NS.last}:query`, userLast);

  // Watch (never handle) broadcast presence for the status a user leaves with.
  host.hook(
    'pre-presence/self',
    (event) => {
      if (event.origin.kind !== 'c2s' || event.stanza.attrs.type !== 'unavailable') return;
      event.origin.session.data.set(STATUS, event.stanza.getChildText('status') ?? undefined);
    },
    1000,
  );

  host.sessionEvents.hook('resource-unbind', ({ session }) => {
    const bare = session.jid.bare;
    if (server.sessions.resources(bare).some((s) => s !== session)) return;
    const activity = { at: Date.now(), status: session.data.get(STATUS) as string | undefined };
    // An account removed in-band is gone before its sessions close; keep it gone.
    server.accounts
      .exists(session.jid.local)
      .then((exists) => (exists ? store.set(bare, activity) : undefined))
      .catch((err) => host.log.error('recording last activity failed', { user: bare, error: String(err) }));
  });
};

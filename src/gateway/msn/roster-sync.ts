// Keeping the user's roster in step with the MSN contact list. Where the
// gateway manages the user's roster (in-process for local users, XEP-0356
// where the users' server granted it) it writes the roster, pushed to every
// online resource: no client action at all. Users who turned direct sync
// off, and users whose roster it cannot write, get PyMSNt's roster-subsync
// subscribe presences instead, which older clients still see as ordinary
// requests.
import type { MsnContact, MsnGroup } from '../../msnp/index.ts';
import { Jid } from '../../jid/jid.ts';
import { itemFor } from '../../modules/roster.ts';
import type { Subscription } from '../../storage/roster.ts';
import { el } from '../../xml/element.ts';
import { NS } from '../../xml/namespaces.ts';
import type { MsnGateway } from './gateway.ts';

/** What the MSN lists say the XMPP subscription is. */
export function subscriptionOf(c: MsnContact): Subscription {
  const to = c.lists.includes('FL');
  const from = c.lists.includes('AL') && !c.lists.includes('BL');
  return to && from ? 'both' : to ? 'to' : from ? 'from' : 'none';
}

export function groupNames(c: MsnContact, groups: Map<string, string>): string[] {
  return c.groups.map((g) => groups.get(g)).filter((n): n is string => n !== undefined);
}

/** Writes the forward list into the user's roster; removes contacts that left it. */
export async function syncRosterDirect(
  gw: MsnGateway,
  user: string,
  contacts: MsnContact[],
  groups: MsnGroup[],
): Promise<void> {
  const groupMap = new Map(groups.map((g) => [g.id, g.name]));
  const wanted = new Map<string, MsnContact>();
  for (const c of contacts) if (c.lists.includes('FL')) wanted.set(gw.contactJid(c.email), c);
  await gw.users.editRoster(Jid.parse(user), (roster) => {
    // Contact JIDs (`x%y@msn...`) no longer on the forward list leave the roster.
    for (const jid of [...roster.items.keys()]) {
      if (jid.endsWith(`@${gw.domain}`) && jid.includes('%') && !wanted.has(jid)) roster.items.delete(jid);
    }
    for (const [jid, c] of wanted) {
      let item: ReturnType<typeof itemFor>;
      try {
        item = itemFor(gw.server, roster, jid);
      } catch {
        gw.host.log.warn('roster full: MSN contact not added', { user, contact: c.email });
        continue;
      }
      // A name the user chose is kept; a new contact takes its MSN nickname.
      if (item.name === undefined) item.name = c.nickname || c.email;
      item.groups = groupNames(c, groupMap);
      const sub = subscriptionOf(c);
      if (item.ask === 'subscribe') {
        // The user's own request is answered by the `subscribed` presence
        // the gateway sent; only the other direction is taken from MSN here.
        const from = sub === 'from' || sub === 'both';
        const to = item.subscription === 'to' || item.subscription === 'both';
        item.subscription = to && from ? 'both' : to ? 'to' : from ? 'from' : 'none';
      } else {
        item.subscription = sub;
      }
      roster.pending.delete(jid);
    }
  });
}

/** PyMSNt's roster-subsync: one subscribe presence per contact, carrying the MSN state. */
export function offerRosterSubsync(gw: MsnGateway, user: string, contacts: MsnContact[], groups: MsnGroup[]): void {
  const groupMap = new Map(groups.map((g) => [g.id, g.name]));
  for (const c of contacts) {
    if (!c.lists.includes('FL')) continue;
    gw.send(
      el(
        'presence',
        { type: 'subscribe', from: gw.contactJid(c.email), to: user },
        el(
          'x',
          { xmlns: NS.rosterSubsync },
          el(
            'item',
            { name: c.nickname || c.email, subscription: subscriptionOf(c) },
            ...groupNames(c, groupMap).map((g) => el('group', null, g)),
          ),
        ),
        c.nickname ? el('nick', { xmlns: NS.nick }, c.nickname) : null,
      ),
    );
  }
}

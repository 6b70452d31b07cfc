// Who may do what in a room (XEP-0045 §5): ranks of affiliations and roles,
// the role an affiliation starts with, and the rules for changing someone
// else's role or affiliation. Pure functions: they throw the stanza error
// the requester gets, and change nothing.
import type { Affiliation, Role, RoomConfig } from '../storage/muc-rooms.ts';
import { StanzaError } from '../xml/errors.ts';

export const AFFILIATIONS: readonly Affiliation[] = ['owner', 'admin', 'member', 'outcast', 'none'];
export const ROLES: readonly Role[] = ['moderator', 'participant', 'visitor', 'none'];

const AFFILIATION_RANK: Record<Affiliation, number> = { outcast: 0, none: 1, member: 2, admin: 3, owner: 4 };
const ROLE_RANK: Record<Role, number> = { none: 0, visitor: 1, participant: 2, moderator: 3 };

export function affiliationRank(a: Affiliation): number {
  return AFFILIATION_RANK[a];
}

export function roleRank(r: Role): number {
  return ROLE_RANK[r];
}

/** The role someone enters with (§5.1.2): admins and owners moderate; visitors in moderated rooms. */
export function defaultRole(affiliation: Affiliation, config: RoomConfig): Role {
  switch (affiliation) {
    case 'owner':
    case 'admin':
      return 'moderator';
    case 'member':
      return 'participant';
    case 'outcast':
      return 'none';
    default:
      return config.moderated ? 'visitor' : 'participant';
  }
}

/**
 * May `actor` (with this affiliation) give `target` the affiliation `to`
 * (§9, §10)? Owners change anything; admins move people among member,
 * none and outcast but never touch admins or owners.
 */
export function checkAffiliationChange(actor: Affiliation, target: Affiliation, to: Affiliation): void {
  if (actor === 'owner') return;
  if (actor !== 'admin') throw new StanzaError('forbidden', 'only admins and owners change affiliations');
  if (target === 'owner' || target === 'admin' || to === 'owner' || to === 'admin') {
    throw new StanzaError('not-allowed', 'only owners grant or take away admin and owner affiliations');
  }
}

/**
 * May `actor` (role and affiliation) set `target`'s role to `to` (§8, §9)?
 * Moderators kick and grant or revoke voice; admins and owners also grant
 * and revoke moderation. Nobody changes the role of an admin or owner:
 * it follows their affiliation (kicked or silenced, they would come back
 * as moderators).
 */
export function checkRoleChange(
  actor: { role: Role; affiliation: Affiliation },
  target: { role: Role; affiliation: Affiliation },
  to: Role,
): void {
  if (actor.role !== 'moderator') throw new StanzaError('forbidden', 'only moderators change roles');
  if (affiliationRank(target.affiliation) >= affiliationRank('admin')) {
    throw new StanzaError('not-allowed', `the role of an ${target.affiliation} cannot be changed`);
  }
  if (
    (to === 'moderator' || target.role === 'moderator') &&
    affiliationRank(actor.affiliation) < affiliationRank('admin')
  ) {
    throw new StanzaError('not-allowed', 'only admins and owners grant or revoke moderation');
  }
}

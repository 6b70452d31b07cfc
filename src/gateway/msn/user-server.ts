// How the transport reaches a user's roster and vCard: the seam between the
// gateway and the server its users live on. Two implementations:
// - in-process (`local-user-server.ts`): the transport inside jabberfly,
//   for jabberfly's own users, reads and writes the stores directly;
// - over stanzas (`remote-user-server.ts`): the transport as an XEP-0114
//   component of another server, or for users of other servers, asks that
//   server: XEP-0356 privileged roster iqs where it granted them (else the
//   gateway offers contacts with roster-subsync), vCard iq gets, probes.
// The rest of the gateway asks these four questions and never which
// implementation answers them.
import type { Jid } from '../../jid/jid.ts';
import type { Roster } from '../../storage/roster.ts';
import type { Element } from '../../xml/element.ts';

export interface UserServer {
  /**
   * Whether the gateway can write this user's roster itself. When it
   * cannot, contacts are offered with roster-subsync subscribe presences.
   */
  managesRoster(user: Jid): boolean;
  /**
   * Edits the user's roster (only when `managesRoster`): `edit` adds,
   * changes and removes items; what changed reaches the user's clients as
   * roster pushes. Edits of one user's roster never interleave.
   */
  editRoster(user: Jid, edit: (roster: Roster) => void): Promise<void>;
  /**
   * After the gateway wrote itself into the user's roster: gets the user's
   * available resources to send their presence to the gateway (which logs
   * them in to MSN).
   */
  requestPresence(user: Jid): void;
  /** The user's own vCard (NICKNAME, PHOTO), or undefined when none can be read. */
  ownVcard(user: Jid): Promise<Element | undefined>;
  /** The link to the users' server went down: forget what it granted. */
  reset(): void;
}

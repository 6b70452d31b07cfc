// The muc#owner iqs (XEP-0045 §10): the configuration form, its
// submission (which also unlocks a new room: an empty submission makes an
// instant room, §10.1.2), cancelling the first configuration (the new
// room is destroyed, §10.1.3), and destroying a room (§10.9).
import { Jid } from '../jid/jid.ts';
import { type Element, el } from '../xml/element.ts';
import { readForm } from '../xml/data-form.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { applyConfigForm, configForm } from './config-form.ts';
import type { Room } from './room.ts';

function requireOwner(room: Room, from: Jid): void {
  if (room.affiliationOf(from.bare) !== 'owner')
    throw new StanzaError('forbidden', 'only owners configure or destroy a room');
}

export function ownerGet(room: Room, from: Jid, archiving: boolean): Element {
  requireOwner(room, from);
  return el('query', { xmlns: NS.mucOwner }, configForm(room.config, room.ctx.muc, room.jid, archiving));
}

/** Applies a submitted configuration, cancels the first one, or destroys the room. */
export async function ownerSet(room: Room, from: Jid, query: Element): Promise<void> {
  requireOwner(room, from);
  const destroy = query.getChild('destroy');
  if (destroy) {
    const alternate = destroy.attrs.jid;
    if (alternate !== undefined && !Jid.tryParse(alternate))
      throw new StanzaError('jid-malformed', 'the alternative venue is not a JID');
    room.destroy({ jid: alternate, reason: destroy.getChildText('reason') ?? undefined });
    return;
  }
  const x = query.getChild('x', NS.dataForms);
  if (!x) throw new StanzaError('bad-request', 'expected a data form or <destroy/>');
  const form = readForm(x);
  if (form.type === 'cancel') {
    if (room.locked) room.destroy({});
    return;
  }
  if (form.type !== 'submit') throw new StanzaError('bad-request', "submit the form with type='submit'");
  const next = applyConfigForm(room.config, form, room.ctx.muc);
  const wasPersistent = room.config.persistent;
  room.applyConfig(next);
  // Stored (or forgotten) before the owner hears it worked.
  if (next.persistent || wasPersistent) await room.ctx.save(room);
  // A room that stopped being persistent and has nobody in it has no reason to exist.
  if (!next.persistent) room.afterLeave();
}

/**
 * Contact lists from MSNP13 on. SYN and the list commands are gone: the
 * lists are read from the address book (ABFindAll: contacts, groups, our own
 * friendly name) and the sharing service (FindMembership: Allow, Block,
 * Reverse, Pending), then declared to the notification server with ADL
 * (`<ml l="1">`, contacts with their FL/AL/BL bits) before presence flows.
 * Edits go to the services first and are then told to the server with
 * ADL/RML; the server pushes ADL/RML with the RL bit when someone adds or
 * removes us.
 */
import type { MsnConnection } from './connection.ts';
import { MsnError } from './errors.ts';
import { type SessionCore, withDeadline } from './session-core.ts';
import {
  type AbContext,
  abContactAdd,
  abContactDelete,
  abFindAll,
  abGroupAdd,
  abGroupContactAdd,
  abGroupContactDelete,
  abGroupDelete,
  abGroupUpdate,
  addMember,
  deleteMember,
  findMembership,
  listPayload,
  type MemberRole,
  parseListPayload,
} from './soap/address-book.ts';
import { LIST_BITS, type ListName, type MsnContact, type MsnGroup } from './types.ts';

/** An ADL/RML payload may not exceed this many bytes: longer lists go in several commands. */
const MAX_LIST_PAYLOAD = 7400;

const ROLE_OF: Partial<Record<ListName, MemberRole>> = { AL: 'Allow', BL: 'Block', RL: 'Reverse', PL: 'Pending' };

export class AddressBookLists {
  constructor(
    private readonly core: SessionCore,
    private readonly onOwnNickname: (nickname: string) => void,
  ) {}

  private ctx(scenario: string): AbContext {
    const core = this.core;
    return {
      baseUrl: core.servicesUrl,
      ticket: core.ticket('contacts.msn.com'),
      timeout: core.timeouts.request,
      trace: core.opts.trace,
      scenario,
    };
  }

  /** Reads both services, fills the contact map, and declares the lists (ADL) on `conn`. */
  async synchronise(conn: MsnConnection): Promise<void> {
    const core = this.core;
    const ctx = this.ctx('Initial');
    const [members, book] = await Promise.all([findMembership(ctx), abFindAll(ctx)]);
    core.contacts.clear();
    core.groups.clear();
    for (const g of book.groups) core.groups.set(g.id, { id: g.id, name: g.name });
    for (const c of book.contacts) {
      if (c.me) {
        if (c.displayName) this.onOwnNickname(c.displayName);
        continue;
      }
      if (!c.isMessengerUser || c.email === core.email) continue;
      const contact = core.ensureContact(c.email);
      contact.guid = c.contactId;
      contact.nickname = c.displayName || c.email;
      contact.groups = c.groupIds.filter((g) => core.groups.has(g));
      if (!contact.lists.includes('FL')) contact.lists.push('FL');
    }
    for (const [list, role] of Object.entries(ROLE_OF) as [ListName, MemberRole][]) {
      for (const m of members.get(role) ?? []) {
        if (m.email === core.email) continue;
        const contact = core.ensureContact(m.email);
        if (contact.nickname === contact.email && m.displayName) contact.nickname = m.displayName;
        if (!contact.lists.includes(list)) contact.lists.push(list);
      }
    }
    // ADL with l="1": the initial declaration; presence follows only for what it names.
    const entries = [...core.contacts.values()].map((c) => ({ email: c.email, bits: declaredBits(c) }));
    for (const chunk of chunks(entries)) {
      await withDeadline(conn.request('ADL', [], { payload: listPayload(chunk, true) }), core.timeouts.request, 'ADL');
    }
  }

  /** ADL/RML pushed by the server: someone added (RL) or removed us, or another endpoint of ours edited a list. */
  onPush(name: 'ADL' | 'RML', payload: Buffer | undefined): void {
    if (!payload || payload.length === 0) return;
    let entries: ReturnType<typeof parseListPayload>;
    try {
      entries = parseListPayload(payload.toString('utf8'));
    } catch (err) {
      this.core.emitError(err as Error);
      return;
    }
    for (const e of entries) {
      for (const [list, bit] of Object.entries(LIST_BITS) as [ListName, number][]) {
        if ((e.bits & bit) === 0) continue;
        const c = this.core.ensureContact(e.email);
        if (name === 'ADL') {
          if (!c.lists.includes(list)) c.lists.push(list);
          const nickname = e.nickname ?? c.nickname;
          if (list === 'RL') {
            if (c.nickname === c.email) c.nickname = nickname;
            this.core.emit('addedBy', { email: c.email, nickname });
          }
          this.core.emit('contactAdded', { email: c.email, list, nickname });
        } else {
          c.lists = c.lists.filter((l) => l !== list);
          this.core.emit('contactRemoved', { email: c.email, list });
        }
      }
    }
  }

  private async declare(name: 'ADL' | 'RML', email: string, bits: number): Promise<void> {
    const conn = this.core.requireOnline();
    await conn.request(name, [], { payload: listPayload([{ email, bits }], false) });
  }

  async addContact(email: string, list: ListName): Promise<MsnContact> {
    const core = this.core;
    core.requireOnline();
    const who = email.toLowerCase();
    const c = core.ensureContact(who);
    if (list === 'FL') {
      if (c.lists.includes('FL')) throw new MsnError(215, `${who} is on the forward list already`, 'ADL');
      c.guid = await abContactAdd(this.ctx('ContactSave'), who);
      let bits = LIST_BITS.FL;
      // As the official client does: adding someone also allows them, unless blocked.
      if (!c.lists.includes('AL') && !c.lists.includes('BL')) {
        await addMember(this.ctx('ContactSave'), 'Allow', who).catch(ignoreExisting);
        bits |= LIST_BITS.AL;
        c.lists.push('AL');
        core.emit('contactAdded', { email: who, list: 'AL', nickname: c.nickname });
      }
      c.lists.push('FL');
      await this.declare('ADL', who, bits);
      core.emit('contactAdded', { email: who, list: 'FL', nickname: c.nickname });
    } else {
      const role = ROLE_OF[list];
      if (!role || list === 'RL' || list === 'PL') throw new MsnError(201, `cannot add to ${list}`, 'ADL');
      if (c.lists.includes(list)) throw new MsnError(215, `${who} is on ${list} already`, 'ADL');
      const opposite: ListName = list === 'AL' ? 'BL' : 'AL';
      if (c.lists.includes(opposite)) throw new MsnError(219, `${who} is on ${opposite}`, 'ADL');
      await addMember(this.ctx('BlockUnblock'), role, who);
      c.lists.push(list);
      await this.declare('ADL', who, LIST_BITS[list]);
      core.emit('contactAdded', { email: who, list, nickname: c.nickname });
    }
    return structuredClone(c);
  }

  async removeContact(email: string, list: ListName): Promise<void> {
    const core = this.core;
    core.requireOnline();
    const who = email.toLowerCase();
    const c = core.contacts.get(who);
    if (!c?.lists.includes(list)) throw new MsnError(216, `${who} is not on ${list}`, 'RML');
    if (list === 'FL') {
      if (c.guid) await abContactDelete(this.ctx('Timer'), c.guid);
      c.groups = [];
    } else {
      const role = ROLE_OF[list];
      if (!role || list === 'RL' || list === 'PL') throw new MsnError(201, `cannot remove from ${list}`, 'RML');
      await deleteMember(this.ctx('BlockUnblock'), role, who);
    }
    c.lists = c.lists.filter((l) => l !== list);
    await this.declare('RML', who, LIST_BITS[list]);
    core.emit('contactRemoved', { email: who, list });
  }

  async addGroup(name: string): Promise<MsnGroup> {
    this.core.requireOnline();
    const id = await abGroupAdd(this.ctx('GroupSave'), name);
    const group = { id, name };
    this.core.groups.set(id, group);
    return { ...group };
  }

  async removeGroup(id: string): Promise<void> {
    this.core.requireOnline();
    await abGroupDelete(this.ctx('Timer'), id);
    this.core.groups.delete(id);
    for (const c of this.core.contacts.values()) c.groups = c.groups.filter((g) => g !== id);
  }

  async renameGroup(id: string, name: string): Promise<void> {
    this.core.requireOnline();
    await abGroupUpdate(this.ctx('GroupSave'), id, name);
    const g = this.core.groups.get(id);
    if (g) g.name = name;
  }

  async moveContact(email: string, to: string | null, from?: string | null): Promise<void> {
    const core = this.core;
    core.requireOnline();
    const who = email.toLowerCase();
    const c = core.contacts.get(who);
    if (!c?.lists.includes('FL') || !c.guid) throw new MsnError(216, `${who} is not on the forward list`, 'ADL');
    if (to) {
      await abGroupContactAdd(this.ctx('GroupSave'), to, c.guid);
      if (!c.groups.includes(to)) c.groups.push(to);
      core.emit('contactAdded', { email: who, list: 'FL', group: to });
    }
    if (from) {
      await abGroupContactDelete(this.ctx('GroupSave'), from, c.guid);
      c.groups = c.groups.filter((g) => g !== from);
      core.emit('contactRemoved', { email: who, list: 'FL', group: from });
    }
  }
}

/** The lists a contact is declared with in ADL: FL, AL and BL (RL and PL are the server's to say). */
function declaredBits(c: MsnContact): number {
  let bits = 0;
  for (const l of ['FL', 'AL', 'BL'] as const) if (c.lists.includes(l)) bits |= LIST_BITS[l];
  return bits;
}

function* chunks(entries: { email: string; bits: number }[]): Generator<{ email: string; bits: number }[]> {
  let current: { email: string; bits: number }[] = [];
  let size = 0;
  for (const e of entries) {
    if (e.bits === 0) continue;
    const cost = e.email.length + 24;
    if (size + cost > MAX_LIST_PAYLOAD && current.length > 0) {
      yield current;
      current = [];
      size = 0;
    }
    current.push(e);
    size += cost;
  }
  // An empty list is still declared, so the server knows the client is ready.
  yield current;
}

function ignoreExisting(err: unknown): void {
  if (err instanceof MsnError && err.code === 215) return;
  throw err;
}

/**
 * Contact lists and groups. Up to MSNP12 on the notification server: the
 * SYN download (GTC, BLP, LSG, LST), list edits (ADC/ADD, REM, ADG, RMG,
 * REG) and the server's pushes (ADC 0 RL when someone adds us, REM 0 RL ...).
 * From MSNP13 the address book services hold them (address-book-lists.ts).
 */
import { AddressBookLists } from './address-book-lists.ts';
import type { MsnCommand } from './command.ts';
import type { MsnConnection } from './connection.ts';
import { MsnError, MsnProtocolError } from './errors.ts';
import { decodeText, encodeText, type SessionCore, withDeadline } from './session-core.ts';
import { LIST_BITS, type ListName, listsFromBits, type MsnContact, type MsnGroup } from './types.ts';

interface SyncState {
  contacts: number;
  groups: number;
  expectContacts?: number;
  expectGroups?: number;
  done?: () => void;
}

export class ContactList {
  private sync: SyncState | undefined;
  privacy: { blp: string; gtc: string } = { blp: 'AL', gtc: 'A' };

  private readonly book: AddressBookLists;

  constructor(
    private readonly core: SessionCore,
    onOwnNickname: (nickname: string) => void,
  ) {
    this.book = new AddressBookLists(core, onOwnNickname);
  }

  /** MSNP13+: the address book services hold the lists. */
  private get soap(): boolean {
    return this.core.version >= 13;
  }

  /** True while the SYN answer is being read (nickname changes then are not news). */
  get syncing(): boolean {
    return this.sync !== undefined;
  }

  /** Downloads the lists (SYN, or the address book from MSNP13); we keep no cache, so always everything. */
  async synchronise(conn: MsnConnection): Promise<void> {
    const core = this.core;
    core.contacts.clear();
    core.groups.clear();
    const sync: SyncState = { contacts: 0, groups: 0 };
    this.sync = sync;
    try {
      if (this.soap) await this.book.synchronise(conn);
      else await this.syn(conn, sync);
    } finally {
      this.sync = undefined;
    }
    core.emit('contactList', { contacts: this.snapshot(), groups: this.groupSnapshot() });
  }

  private async syn(conn: MsnConnection, sync: SyncState): Promise<void> {
    const core = this.core;
    const v10 = core.version >= 10;
    const reply = await conn.request('SYN', v10 ? ['0', '0'] : ['0']);
    // MSNP10+: SYN trid ts1 ts2 contacts groups; MSNP8/9: SYN trid version contacts groups.
    const nums = reply.args.slice(1);
    const contacts = Number(nums[nums.length - 2]);
    const groups = Number(nums[nums.length - 1]);
    if (nums.length < 3 || !Number.isFinite(contacts) || !Number.isFinite(groups)) return;
    sync.expectContacts = contacts;
    sync.expectGroups = groups;
    if (sync.contacts >= contacts && sync.groups >= groups) return;
    await withDeadline(
      new Promise<void>((resolve) => {
        sync.done = resolve;
      }),
      core.timeouts.request,
      'contact list (LST/LSG)',
    );
  }

  snapshot(): MsnContact[] {
    return [...this.core.contacts.values()].map((c) => structuredClone(c));
  }

  groupSnapshot(): MsnGroup[] {
    return [...this.core.groups.values()].map((g) => ({ ...g }));
  }

  /** Handles the list commands of the NS; returns false for anything else. */
  onCommand(cmd: MsnCommand): boolean {
    const a = cmd.args;
    switch (cmd.name) {
      case 'GTC':
        this.privacy.gtc = a[a.length - 1] ?? this.privacy.gtc;
        return true;
      case 'BLP':
        this.privacy.blp = a[a.length - 1] ?? this.privacy.blp;
        return true;
      case 'LSG':
        this.onLsg(a);
        return true;
      case 'LST':
        this.onLst(a);
        return true;
      case 'ADC':
      case 'ADD':
        this.onAsyncAdd(cmd);
        return true;
      case 'REM':
        this.onAsyncRemove(a);
        return true;
      case 'ADL':
      case 'RML':
        this.book.onPush(cmd.name, cmd.payload);
        return true;
      default:
        return false;
    }
  }

  private onLsg(a: string[]): void {
    // MSNP10+: LSG name id ; MSNP8/9: LSG id name 0
    const v10 = this.core.version >= 10;
    const id = v10 ? a[1] : a[0];
    const name = v10 ? a[0] : a[1];
    if (id !== undefined) this.core.groups.set(id, { id, name: decodeText(name) });
    this.bumpSync('groups');
  }

  private onLst(a: string[]): void {
    let email: string | undefined;
    let nick: string | undefined;
    let guid: string | undefined;
    let rest: string[];
    if (a[0]?.startsWith('N=')) {
      // MSNP10+: LST N=email [F=nick] [C=guid] lists [groups]
      rest = [];
      for (const t of a) {
        if (t.startsWith('N=')) email = t.slice(2);
        else if (t.startsWith('F=')) nick = t.slice(2);
        else if (t.startsWith('C=')) guid = t.slice(2);
        else rest.push(t);
      }
    } else {
      // MSNP8/9: LST email nick lists [groups]
      email = a[0];
      nick = a[1];
      rest = a.slice(2);
    }
    if (email) {
      const c = this.core.ensureContact(email);
      if (nick !== undefined) c.nickname = decodeText(nick, c.email);
      if (guid !== undefined) c.guid = guid;
      c.lists = listsFromBits(Number(rest[0]) || 0);
      // MSNP12 puts the network id between the list bits and the groups.
      const groups = this.core.version >= 12 ? rest[2] : rest[1];
      c.groups = groups ? groups.split(',').filter((g) => g.length > 0) : [];
    }
    this.bumpSync('contacts');
  }

  private bumpSync(kind: 'contacts' | 'groups'): void {
    const s = this.sync;
    if (!s) return;
    s[kind]++;
    if (
      s.expectContacts !== undefined &&
      s.expectGroups !== undefined &&
      s.contacts >= s.expectContacts &&
      s.groups >= s.expectGroups
    ) {
      s.done?.();
    }
  }

  /** ADC 0 RL N=email F=nick (someone added us) and other server-initiated additions. */
  private onAsyncAdd(cmd: MsnCommand): void {
    const a = cmd.args;
    const list = a[1] as ListName;
    if (!(list in LIST_BITS)) return;
    let email: string | undefined;
    let nick: string | undefined;
    if (cmd.name === 'ADC') {
      email = a.find((t) => t.startsWith('N='))?.slice(2);
      nick = a.find((t) => t.startsWith('F='))?.slice(2);
    } else {
      // ADD 0 RL version email nick
      email = a[3];
      nick = a[4];
    }
    if (!email) return;
    const c = this.core.ensureContact(email);
    if (!c.lists.includes(list)) c.lists.push(list);
    const nickname = decodeText(nick, c.nickname);
    if (list === 'RL') {
      if (c.nickname === c.email) c.nickname = nickname;
      this.core.emit('addedBy', { email: c.email, nickname });
    }
    this.core.emit('contactAdded', { email: c.email, list, nickname });
  }

  private onAsyncRemove(a: string[]): void {
    // REM 0 RL email (MSNP10+: REM 0 RL N=email on some servers)
    const list = a[1] as ListName;
    if (!(list in LIST_BITS) || !a[2]) return;
    const id = a[2].replace(/^N=/, '');
    const contacts = this.core.contacts;
    const c = contacts.get(id.toLowerCase()) ?? [...contacts.values()].find((x) => x.guid === id);
    if (!c) return;
    if (a[3] !== undefined && list === 'FL') {
      c.groups = c.groups.filter((g) => g !== a[3]);
      this.core.emit('contactRemoved', { email: c.email, list, group: a[3] });
      return;
    }
    c.lists = c.lists.filter((l) => l !== list);
    this.core.emit('contactRemoved', { email: c.email, list });
  }

  // ---------------------------------------------------------------- list calls

  async addContact(email: string, list: ListName = 'FL'): Promise<MsnContact> {
    if (this.soap) return this.book.addContact(email, list);
    const core = this.core;
    const conn = core.requireOnline();
    const who = email.toLowerCase();
    const v10 = core.version >= 10;
    let reply: MsnCommand;
    if (v10) {
      reply = await conn.request(
        'ADC',
        list === 'FL' ? [list, `N=${who}`, `F=${encodeText(who)}`] : [list, `N=${who}`],
      );
    } else {
      reply = await conn.request('ADD', [list, who, encodeText(who)]);
    }
    const c = core.ensureContact(who);
    if (!c.lists.includes(list)) c.lists.push(list);
    if (v10) {
      const guid = reply.args.find((t) => t.startsWith('C='))?.slice(2);
      if (guid) c.guid = guid;
      const nick = reply.args.find((t) => t.startsWith('F='))?.slice(2);
      if (nick && c.status === 'FLN') c.nickname = decodeText(nick, who);
    }
    core.emit('contactAdded', { email: who, list, nickname: c.nickname });
    if (list === 'FL' && !c.lists.includes('AL') && !c.lists.includes('BL')) {
      await this.addContact(who, 'AL').catch((err: unknown) => {
        if (!(err instanceof MsnError && err.code === 215)) throw err;
      });
    }
    return structuredClone(core.contacts.get(who) ?? c);
  }

  async removeContact(email: string, list: ListName = 'FL'): Promise<void> {
    if (this.soap) return this.book.removeContact(email, list);
    const core = this.core;
    const conn = core.requireOnline();
    const who = email.toLowerCase();
    const c = core.contacts.get(who);
    const id = list === 'FL' && core.version >= 10 ? (c?.guid ?? who) : who;
    await conn.request('REM', [list, id]);
    if (c) {
      c.lists = c.lists.filter((l) => l !== list);
      if (list === 'FL') c.groups = [];
    }
    core.emit('contactRemoved', { email: who, list });
  }

  async block(email: string): Promise<void> {
    const c = this.core.contacts.get(email.toLowerCase());
    if (c?.lists.includes('AL')) await this.removeContact(email, 'AL');
    if (!c?.lists.includes('BL')) await this.addContact(email, 'BL');
  }

  async unblock(email: string): Promise<void> {
    const c = this.core.contacts.get(email.toLowerCase());
    if (c?.lists.includes('BL')) await this.removeContact(email, 'BL');
    if (!c?.lists.includes('AL')) await this.addContact(email, 'AL');
  }

  async allow(email: string): Promise<void> {
    const c = this.core.contacts.get(email.toLowerCase());
    if (c?.lists.includes('BL')) await this.removeContact(email, 'BL');
    if (!this.core.contacts.get(email.toLowerCase())?.lists.includes('AL'))
      await this.addContact(email, 'AL');
  }

  async addGroup(name: string): Promise<MsnGroup> {
    if (this.soap) return this.book.addGroup(name);
    const core = this.core;
    const conn = core.requireOnline();
    const v10 = core.version >= 10;
    const reply = await conn.request('ADG', v10 ? [encodeText(name)] : [encodeText(name), '0']);
    // MSNP10+: ADG trid name id ; MSNP8/9: ADG trid version name id 0
    const id = v10 ? reply.args[2] : reply.args[3];
    if (!id) throw new MsnProtocolError(`ADG reply without a group id: ${reply.args.join(' ')}`);
    const group = { id, name };
    core.groups.set(id, group);
    return { ...group };
  }

  async removeGroup(id: string): Promise<void> {
    if (this.soap) return this.book.removeGroup(id);
    await this.core.requireOnline().request('RMG', [id]);
    this.core.groups.delete(id);
    for (const c of this.core.contacts.values()) c.groups = c.groups.filter((g) => g !== id);
  }

  async renameGroup(id: string, name: string): Promise<void> {
    if (this.soap) return this.book.renameGroup(id, name);
    const v10 = this.core.version >= 10;
    await this.core
      .requireOnline()
      .request('REG', v10 ? [id, encodeText(name)] : [id, encodeText(name), '0']);
    const g = this.core.groups.get(id);
    if (g) g.name = name;
  }

  async moveContact(email: string, to: string | null, from?: string | null): Promise<void> {
    if (this.soap) return this.book.moveContact(email, to, from);
    const core = this.core;
    const conn = core.requireOnline();
    const who = email.toLowerCase();
    const c = core.contacts.get(who);
    if (!c?.lists.includes('FL')) throw new MsnError(216, `${who} is not on the forward list`, 'ADC');
    const v10 = core.version >= 10;
    const id = v10 ? (c.guid ?? who) : who;
    if (to) {
      if (v10) await conn.request('ADC', ['FL', `C=${id}`, to]);
      else await conn.request('ADD', ['FL', who, encodeText(c.nickname), to]);
      if (!c.groups.includes(to)) c.groups.push(to);
      core.emit('contactAdded', { email: who, list: 'FL', group: to });
    }
    if (from) {
      await conn.request('REM', ['FL', id, from]);
      c.groups = c.groups.filter((g) => g !== from);
      core.emit('contactRemoved', { email: who, list: 'FL', group: from });
    }
  }
}

// Persistent (for the simulator's lifetime) account data: passwords, contact
// lists, groups and privacy settings. Everything here survives restart();
// presence and connections live elsewhere and do not.

import { randomUUID } from 'node:crypto';

/** The four MSNP lists. The pending list (PL) is not simulated. */
export type ListName = 'FL' | 'AL' | 'BL' | 'RL';

/** LST list bits, as sent in SYN since MSNP8. */
export const LIST_BITS: Readonly<Record<ListName, number>> = { FL: 1, AL: 2, BL: 4, RL: 8 };

export interface ContactEntry {
  email: string;
  /** Contact GUID, used as C= and in REM FL since MSNP10. */
  guid: string;
  /** Name stored for this contact (F=); starts as the contact's own name. */
  nickname: string;
  lists: Set<ListName>;
  /** Group GUIDs; only meaningful while the contact is on the FL. */
  groups: Set<string>;
}

export interface Group {
  guid: string;
  name: string;
}

export interface Account {
  email: string;
  password: string;
  /** The account's own friendly name (PRP MFN). */
  friendlyName: string;
  /** BLP: AL = allow everyone not blocked, BL = block everyone not allowed. */
  blp: 'AL' | 'BL';
  /** GTC: A = ask when someone adds you, N = do not ask. */
  gtc: 'A' | 'N';
  /** PRP values other than MFN (PHH, PHW, PHM, MOB, ...), URL-encoded as sent. */
  properties: Map<string, string>;
  /** Keyed by lowercased email. */
  contacts: Map<string, ContactEntry>;
  /** Keyed by group GUID, in creation order. */
  groups: Map<string, Group>;
  /** Bumped on every list change; drives SYN versions/timestamps. */
  listVersion: number;
  listChanged: Date;
  settingsChanged: Date;
  /** Last UUX payload (personal message / current media), kept across logins. */
  personalData: string | null;
  /** Offline messages (OIMs) waiting for this account, oldest first. */
  oims: StoredOim[];
}

/** An offline message as the OIM service stored it. */
export interface StoredOim {
  id: string;
  from: string;
  /** The sender's friendly name as given in Store (MIME encoded-word), if any. */
  fromFriendly: string;
  to: string;
  /** Decoded text. */
  text: string;
  sent: Date;
  runId: string;
  sequence: number;
}

export interface AddAccountOptions {
  nickname?: string;
}

/** Loose e-mail check, in the spirit of the server's 201/208 checks. */
export function isValidHandle(email: string): boolean {
  return /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email) && email.length <= 129;
}

export class AccountStore {
  private readonly accounts = new Map<string, Account>();

  add(email: string, password: string, options: AddAccountOptions = {}): Account {
    const key = email.toLowerCase();
    if (!isValidHandle(key)) throw new Error(`invalid passport handle: ${email}`);
    if (this.accounts.has(key)) throw new Error(`account already exists: ${email}`);
    const now = new Date();
    const account: Account = {
      email: key,
      password,
      friendlyName: options.nickname ?? key,
      blp: 'AL',
      gtc: 'A',
      properties: new Map(),
      contacts: new Map(),
      groups: new Map(),
      listVersion: 0,
      listChanged: now,
      settingsChanged: now,
      personalData: null,
      oims: [],
    };
    this.accounts.set(key, account);
    return account;
  }

  get(email: string): Account | undefined {
    return this.accounts.get(email.toLowerCase());
  }

  all(): Account[] {
    return [...this.accounts.values()];
  }

  /** Marks a list change (new SYN version / timestamp). */
  touch(account: Account): void {
    account.listVersion++;
    account.listChanged = new Date();
  }

  touchSettings(account: Account): void {
    account.listVersion++;
    account.settingsChanged = new Date();
  }

  /** Returns (creating if needed) owner's entry for `email`. */
  entry(owner: Account, email: string, defaultNickname?: string): ContactEntry {
    const key = email.toLowerCase();
    let entry = owner.contacts.get(key);
    if (!entry) {
      entry = {
        email: key,
        guid: randomUUID(),
        nickname: defaultNickname ?? this.get(key)?.friendlyName ?? key,
        lists: new Set(),
        groups: new Set(),
      };
      owner.contacts.set(key, entry);
    }
    return entry;
  }

  /** Drops an entry that is on no list any more. */
  prune(owner: Account, email: string): void {
    const entry = owner.contacts.get(email.toLowerCase());
    if (entry && entry.lists.size === 0) owner.contacts.delete(entry.email);
  }

  findByGuid(owner: Account, guid: string): ContactEntry | undefined {
    const wanted = guid.toLowerCase();
    for (const entry of owner.contacts.values()) if (entry.guid === wanted) return entry;
    return undefined;
  }

  inList(owner: Account, email: string, list: ListName): boolean {
    return owner.contacts.get(email.toLowerCase())?.lists.has(list) ?? false;
  }

  /**
   * Puts `contactEmail` on one of owner's lists and keeps the reverse list
   * of the contact in sync when the list is FL. Returns false if it already was.
   */
  addToList(owner: Account, contactEmail: string, list: ListName, nickname?: string): boolean {
    const entry = this.entry(owner, contactEmail, nickname);
    if (entry.lists.has(list)) return false;
    entry.lists.add(list);
    if (list === 'FL' && nickname !== undefined) entry.nickname = nickname;
    if (list === 'FL') {
      const other = this.get(contactEmail);
      if (other) {
        const back = this.entry(other, owner.email, owner.friendlyName);
        back.lists.add('RL');
        this.touch(other);
      }
    }
    this.touch(owner);
    return true;
  }

  /** Inverse of addToList. Returns false if the contact was not on the list. */
  removeFromList(owner: Account, contactEmail: string, list: ListName): boolean {
    const entry = owner.contacts.get(contactEmail.toLowerCase());
    if (!entry?.lists.has(list)) return false;
    entry.lists.delete(list);
    if (list === 'FL') {
      entry.groups.clear();
      const other = this.get(contactEmail);
      const back = other?.contacts.get(owner.email);
      if (other && back) {
        back.lists.delete('RL');
        this.prune(other, owner.email);
        this.touch(other);
      }
    }
    this.prune(owner, contactEmail);
    this.touch(owner);
    return true;
  }

  addGroup(owner: Account, name: string): Group {
    const group = { guid: randomUUID(), name };
    owner.groups.set(group.guid, group);
    this.touch(owner);
    return group;
  }
}

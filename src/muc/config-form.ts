// The room configuration form (XEP-0045 §10.2, FORM_TYPE muc#roomconfig):
// the RoomConfig as the owner sees it, and a submitted form applied to a
// copy of it. Unknown fields are ignored (clients send what other servers
// offer); known ones are checked against the service's limits.
import type { Config } from '../config/schema.ts';
import type { AllowPm, RoomConfig, Whois } from '../storage/muc-rooms.ts';
import { type Element, el } from '../xml/element.ts';
import { buildForm, type DataForm, type FieldType, type FormField, parseBoolean } from '../xml/data-form.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

type MucConfig = Config['muc'];

const F = {
  name: 'muc#roomconfig_roomname',
  description: 'muc#roomconfig_roomdesc',
  language: 'muc#roomconfig_lang',
  persistent: 'muc#roomconfig_persistentroom',
  public: 'muc#roomconfig_publicroom',
  membersOnly: 'muc#roomconfig_membersonly',
  moderated: 'muc#roomconfig_moderatedroom',
  passwordProtected: 'muc#roomconfig_passwordprotectedroom',
  password: 'muc#roomconfig_roomsecret',
  whois: 'muc#roomconfig_whois',
  changeSubject: 'muc#roomconfig_changesubject',
  allowInvites: 'muc#roomconfig_allowinvites',
  allowPm: 'muc#roomconfig_allowpm',
  maxUsers: 'muc#roomconfig_maxusers',
  historyLength: 'muc#roomconfig_historylength',
  archive: 'muc#roomconfig_enablearchiving',
} as const;

/** A new room's configuration: temporary, public, open, unmoderated, semi-anonymous. */
export function defaultRoomConfig(muc: MucConfig): RoomConfig {
  return {
    name: '',
    description: '',
    language: '',
    persistent: false,
    public: true,
    membersOnly: false,
    moderated: false,
    password: '',
    whois: 'moderators',
    changeSubject: false,
    allowInvites: false,
    allowPm: 'anyone',
    maxUsers: 0,
    historyLength: muc.historyDefault,
    archive: true,
  };
}

/** The form an owner fills in, showing the current values. */
export function configForm(config: RoomConfig, muc: MucConfig, roomJid: string, archiving: boolean): Element {
  const fields: FormField[] = [
    field(F.name, 'text-single', 'Name', config.name),
    field(F.description, 'text-single', 'Description', config.description),
    field(F.language, 'text-single', 'Language of the discussion', config.language),
    field(F.persistent, 'boolean', 'Keep the room when the last occupant leaves', config.persistent),
    field(F.public, 'boolean', 'List the room in the directory', config.public),
    field(F.membersOnly, 'boolean', 'Only members may enter', config.membersOnly),
    field(F.moderated, 'boolean', 'Only occupants with voice may speak', config.moderated),
    field(F.passwordProtected, 'boolean', 'A password is required to enter', config.password !== ''),
    field(F.password, 'text-private', 'Password', config.password),
    field(F.whois, 'list-single', 'Who may see occupants\u2019 real addresses', config.whois, [
      { value: 'moderators', label: 'Moderators only' },
      { value: 'anyone', label: 'Anyone' },
    ]),
    field(F.changeSubject, 'boolean', 'Occupants may change the subject', config.changeSubject),
    field(F.allowInvites, 'boolean', 'Members may invite others to a members-only room', config.allowInvites),
    field(F.allowPm, 'list-single', 'Who may send private messages', config.allowPm, [
      { value: 'anyone', label: 'Anyone' },
      { value: 'participants', label: 'Participants and moderators' },
      { value: 'moderators', label: 'Moderators only' },
      { value: 'none', label: 'Nobody' },
    ]),
    field(
      F.maxUsers,
      'text-single',
      `Most occupants at once (0: the service's limit, ${muc.maxOccupants})`,
      config.maxUsers,
    ),
    field(
      F.historyLength,
      'text-single',
      `Messages shown to new occupants (0 to ${muc.historyMaxStanzas})`,
      config.historyLength,
    ),
  ];
  if (archiving) {
    fields.push(field(F.archive, 'boolean', 'Archive messages (XEP-0313)', config.archive));
  }
  const form = buildForm('form', NS.mucRoomConfig, fields);
  form.children.unshift(el('title', null, `Configuration of ${roomJid}`));
  return form;
}

/** A form field showing one current value (booleans as 1/0). */
export function field(
  name: string,
  type: FieldType | undefined,
  label: string,
  value: string | number | boolean,
  options?: FormField['options'],
): FormField {
  const text = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
  return { var: name, type, label, values: [text], options };
}

/** Typed reading of a submitted form's values: bad values are the submitter's error. */
class Values {
  constructor(private readonly form: DataForm) {}

  has(name: string): boolean {
    return this.form.fields.has(name);
  }

  text(name: string): string | undefined {
    const f = this.form.fields.get(name);
    return f === undefined ? undefined : (f.values[0] ?? '');
  }

  boolean(name: string): boolean | undefined {
    const v = this.text(name);
    if (v === undefined) return undefined;
    // An empty value means false, as clients send an unticked box.
    const b = v === '' ? false : parseBoolean(v);
    if (b === undefined) throw new StanzaError('bad-request', `field ${name} must be a boolean`);
    return b;
  }

  /** A whole number within [min, max]. */
  integer(name: string, min: number, max: number): number | undefined {
    const v = this.text(name)?.trim();
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(v)) throw new StanzaError('bad-request', `field ${name} must be a whole number`);
    const n = Number(v);
    if (n < min || n > max)
      throw new StanzaError('not-acceptable', `field ${name} must be from ${min} to ${max}`);
    return n;
  }
}

/** The configuration after applying a submitted form; the current one stays untouched. */
export function applyConfigForm(current: RoomConfig, submitted: DataForm, muc: MucConfig): RoomConfig {
  if (submitted.formType !== undefined && submitted.formType !== NS.mucRoomConfig) {
    throw new StanzaError('bad-request', `expected FORM_TYPE ${NS.mucRoomConfig}`);
  }
  const form = new Values(submitted);
  const next: RoomConfig = { ...current };
  const text = (field: string, fallback: string) => {
    const v = form.text(field);
    if (v === undefined) return fallback;
    if (v.length > muc.maxTextLength) {
      throw new StanzaError('not-acceptable', `${field} is longer than ${muc.maxTextLength} characters`);
    }
    return v;
  };
  const bool = (field: string, fallback: boolean) => form.boolean(field) ?? fallback;
  next.name = text(F.name, next.name);
  next.description = text(F.description, next.description);
  next.language = text(F.language, next.language);
  next.persistent = bool(F.persistent, next.persistent);
  next.public = bool(F.public, next.public);
  next.membersOnly = bool(F.membersOnly, next.membersOnly);
  next.moderated = bool(F.moderated, next.moderated);
  next.changeSubject = bool(F.changeSubject, next.changeSubject);
  next.allowInvites = bool(F.allowInvites, next.allowInvites);
  next.archive = bool(F.archive, next.archive);
  const secret = text(F.password, next.password);
  const protectedRoom = form.boolean(F.passwordProtected);
  if (protectedRoom === false) next.password = '';
  else if (protectedRoom === true || form.has(F.password)) next.password = secret;
  if (protectedRoom === true && next.password === '') {
    throw new StanzaError('not-acceptable', 'a password-protected room needs a password');
  }
  const whois = form.text(F.whois);
  if (whois !== undefined) {
    if (whois !== 'moderators' && whois !== 'anyone')
      throw new StanzaError('not-acceptable', `${F.whois} is moderators or anyone`);
    next.whois = whois as Whois;
  }
  const pm = form.text(F.allowPm);
  if (pm !== undefined) {
    if (!['anyone', 'participants', 'moderators', 'none'].includes(pm)) {
      throw new StanzaError('not-acceptable', `${F.allowPm} is anyone, participants, moderators or none`);
    }
    next.allowPm = pm as AllowPm;
  }
  // "none" is how some clients say "no room limit": the service's limit still applies.
  const maxUsers = form.text(F.maxUsers);
  if (maxUsers !== undefined && maxUsers !== 'none')
    next.maxUsers = form.integer(F.maxUsers, 0, muc.maxOccupants) ?? next.maxUsers;
  else if (maxUsers === 'none') next.maxUsers = 0;
  next.historyLength = form.integer(F.historyLength, 0, muc.historyMaxStanzas) ?? next.historyLength;
  return next;
}

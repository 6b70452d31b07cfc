/**
 * The contact list of MSNP13+ lives in two SOAP services instead of the
 * notification server: the address book (abservice.asmx: contacts, groups,
 * the "Me" contact with our friendly name) and the sharing service
 * (SharingService.asmx: the Allow, Block, Reverse and Pending memberships).
 * Both authenticate with the contacts.msn.com ticket.
 */
import { MsnError, MsnProtocolError } from '../errors.ts';
import type { MsnTrace } from '../trace.ts';
import { postSoap } from './http.ts';
import { child, childText, type Element, envelope, esc, find, findAll, parseXml, soapFault, text } from './xml.ts';

export const AB_NS = 'http://www.msn.com/webservices/AddressBook';
const NIL_GUID = '00000000-0000-0000-0000-000000000000';
/** The group type of ordinary contact groups. */
const GROUP_TYPE = 'C8529CE2-6EAD-434d-881F-341E17DB3FF8';

export interface AbContext {
  /** Base URL of the services, e.g. https://contacts.msn.com (paths are appended). */
  baseUrl: string;
  /** The contacts.msn.com compact ticket. */
  ticket: string;
  timeout: number;
  trace?: MsnTrace;
  /** PartnerScenario header: Initial at login, ContactSave/BlockUnblock/... for edits. */
  scenario?: string;
}

export interface AbContact {
  contactId: string;
  email: string;
  displayName: string;
  isMessengerUser: boolean;
  groupIds: string[];
  /** contactType "Me": our own entry. */
  me: boolean;
}

export interface AbGroup {
  id: string;
  name: string;
}

export type MemberRole = 'Allow' | 'Block' | 'Reverse' | 'Pending';

/** Faults the services answer with, mapped to the MSNP error an older server would have sent. */
const FAULT_CODES: Record<string, number> = {
  ContactAlreadyExists: 215,
  ContactDoesNotExist: 216,
  MemberAlreadyExists: 215,
  MemberDoesNotExist: 216,
  GroupAlreadyExists: 228,
  GroupDoesNotExist: 224,
  InvalidPassportUser: 208,
  BadEmailArgument: 201,
};

function headers(ctx: AbContext): string {
  return (
    `<ABApplicationHeader xmlns="${AB_NS}"><ApplicationId>CFE80F9D-180F-4399-82AB-413F33A1FA11</ApplicationId>` +
    `<IsMigration>false</IsMigration><PartnerScenario>${esc(ctx.scenario ?? 'Initial')}</PartnerScenario></ABApplicationHeader>` +
    `<ABAuthHeader xmlns="${AB_NS}"><ManagedGroupRequest>false</ManagedGroupRequest><TicketToken>${esc(ctx.ticket)}</TicketToken></ABAuthHeader>`
  );
}

async function call(ctx: AbContext, service: 'abservice' | 'SharingService', action: string, inner: string): Promise<Element> {
  const reply = await postSoap({
    url: `${ctx.baseUrl}/abservice/${service}.asmx`,
    action: `${AB_NS}/${action}`,
    body: envelope(headers(ctx), `<${action} xmlns="${AB_NS}">${inner}</${action}>`),
    timeout: ctx.timeout,
    trace: ctx.trace,
  });
  const doc = parseXml(reply.body, action);
  const fault = soapFault(doc);
  if (fault) {
    const code = text(fault.detail ?? doc, 'errorcode') ?? fault.code;
    throw new MsnError(FAULT_CODES[code] ?? 500, `${action}: ${code} ${fault.text}`.trim(), action);
  }
  if (reply.status !== 200) throw new MsnProtocolError(`${action} answered HTTP ${reply.status}`);
  return doc;
}

function contactXml(email: string): string {
  return `<Contact xmlns="${AB_NS}"><contactInfo><passportName>${esc(email)}</passportName><isSmtp>false</isSmtp><isMessengerUser>true</isMessengerUser></contactInfo></Contact>`;
}

/** The whole address book: groups and contacts (our own "Me" entry included). */
export async function abFindAll(ctx: AbContext): Promise<{ groups: AbGroup[]; contacts: AbContact[] }> {
  const doc = await call(
    ctx,
    'abservice',
    'ABFindAll',
    `<abId>${NIL_GUID}</abId><abView>Full</abView><deltasOnly>false</deltasOnly><lastChange>0001-01-01T00:00:00.0000000-08:00</lastChange>`,
  );
  const groups: AbGroup[] = [];
  for (const g of findAll(doc, 'Group')) {
    const id = childText(g, 'groupId');
    const info = child(g, 'groupInfo');
    if (id && info) groups.push({ id, name: childText(info, 'name') ?? '' });
  }
  const contacts: AbContact[] = [];
  for (const c of findAll(doc, 'Contact')) {
    const info = child(c, 'contactInfo');
    const contactId = childText(c, 'contactId');
    if (!info || !contactId) continue;
    const email = (childText(info, 'passportName') ?? '').toLowerCase();
    const me = childText(info, 'contactType') === 'Me';
    if (!email && !me) continue;
    const ids = child(info, 'groupIds');
    contacts.push({
      contactId,
      email,
      displayName: childText(info, 'displayName') ?? email,
      isMessengerUser: childText(info, 'isMessengerUser') === 'true',
      groupIds: ids ? findAll(ids, 'guid').map((e) => e.getText()) : [],
      me,
    });
  }
  return { groups, contacts };
}

/** The Messenger service's memberships: who is on our Allow, Block, Reverse and Pending lists. */
export async function findMembership(ctx: AbContext): Promise<Map<MemberRole, { email: string; displayName: string }[]>> {
  const doc = await call(
    ctx,
    'SharingService',
    'FindMembership',
    '<serviceFilter><Types><ServiceType>Messenger</ServiceType><ServiceType>Invitation</ServiceType>' +
      '<ServiceType>SocialNetwork</ServiceType><ServiceType>Space</ServiceType><ServiceType>Profile</ServiceType></Types></serviceFilter>',
  );
  const out = new Map<MemberRole, { email: string; displayName: string }[]>();
  for (const service of findAll(doc, 'Service')) {
    const type = text(child(service, 'Info') ?? service, 'Type');
    if (type !== undefined && type !== 'Messenger') continue;
    for (const m of findAll(service, 'Membership')) {
      const role = childText(m, 'MemberRole') as MemberRole | undefined;
      if (role !== 'Allow' && role !== 'Block' && role !== 'Reverse' && role !== 'Pending') continue;
      const list = out.get(role) ?? [];
      for (const member of findAll(m, 'Member')) {
        const email = childText(member, 'PassportName')?.toLowerCase();
        if (email) list.push({ email, displayName: childText(member, 'DisplayName') ?? email });
      }
      out.set(role, list);
    }
  }
  return out;
}

function serviceHandle(): string {
  return '<serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId></serviceHandle>';
}

function membership(role: MemberRole, email: string): string {
  return (
    `<memberships><Membership><MemberRole>${role}</MemberRole><Members><Member xsi:type="PassportMember" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
    `<Type>Passport</Type><State>Accepted</State><PassportName>${esc(email)}</PassportName></Member></Members></Membership></memberships>`
  );
}

export async function addMember(ctx: AbContext, role: MemberRole, email: string): Promise<void> {
  await call(ctx, 'SharingService', 'AddMember', serviceHandle() + membership(role, email));
}

export async function deleteMember(ctx: AbContext, role: MemberRole, email: string): Promise<void> {
  await call(ctx, 'SharingService', 'DeleteMember', serviceHandle() + membership(role, email));
}

/** Adds a Messenger contact; resolves with its contact id. */
export async function abContactAdd(ctx: AbContext, email: string): Promise<string> {
  const doc = await call(
    ctx,
    'abservice',
    'ABContactAdd',
    `<abId>${NIL_GUID}</abId><contacts>${contactXml(email)}</contacts><options><EnableAllowListManagement>true</EnableAllowListManagement></options>`,
  );
  const id = text(doc, 'guid');
  if (!id) throw new MsnProtocolError('ABContactAdd answered without a contact id');
  return id;
}

export async function abContactDelete(ctx: AbContext, contactId: string): Promise<void> {
  await call(
    ctx,
    'abservice',
    'ABContactDelete',
    `<abId>${NIL_GUID}</abId><contacts><Contact><contactId>${esc(contactId)}</contactId></Contact></contacts>`,
  );
}

export async function abGroupAdd(ctx: AbContext, name: string): Promise<string> {
  const doc = await call(
    ctx,
    'abservice',
    'ABGroupAdd',
    `<abId>${NIL_GUID}</abId><groupAddOptions><fRenameOnMsgrConflict>false</fRenameOnMsgrConflict></groupAddOptions>` +
      `<groupInfo><GroupInfo><name>${esc(name)}</name><groupType>${GROUP_TYPE}</groupType><fMessenger>false</fMessenger>` +
      '<annotations><Annotation><Name>MSN.IM.Display</Name><Value>1</Value></Annotation></annotations></GroupInfo></groupInfo>',
  );
  const id = text(doc, 'guid');
  if (!id) throw new MsnProtocolError('ABGroupAdd answered without a group id');
  return id;
}

export async function abGroupDelete(ctx: AbContext, groupId: string): Promise<void> {
  await call(ctx, 'abservice', 'ABGroupDelete', `<abId>${NIL_GUID}</abId><groupFilter><groupIds><guid>${esc(groupId)}</guid></groupIds></groupFilter>`);
}

export async function abGroupUpdate(ctx: AbContext, groupId: string, name: string): Promise<void> {
  await call(
    ctx,
    'abservice',
    'ABGroupUpdate',
    `<abId>${NIL_GUID}</abId><groups><Group><groupId>${esc(groupId)}</groupId><groupInfo><name>${esc(name)}</name></groupInfo>` +
      '<propertiesChanged>GroupName</propertiesChanged></Group></groups>',
  );
}

async function groupContact(ctx: AbContext, action: 'ABGroupContactAdd' | 'ABGroupContactDelete', groupId: string, contactId: string): Promise<void> {
  await call(
    ctx,
    'abservice',
    action,
    `<abId>${NIL_GUID}</abId><groupFilter><groupIds><guid>${esc(groupId)}</guid></groupIds></groupFilter>` +
      `<contacts><Contact><contactId>${esc(contactId)}</contactId></Contact></contacts>`,
  );
}

export const abGroupContactAdd = (ctx: AbContext, groupId: string, contactId: string) =>
  groupContact(ctx, 'ABGroupContactAdd', groupId, contactId);
export const abGroupContactDelete = (ctx: AbContext, groupId: string, contactId: string) =>
  groupContact(ctx, 'ABGroupContactDelete', groupId, contactId);

/** The ADL/RML payload: `<ml>` with contacts grouped by domain, each with its list bits. */
export function listPayload(entries: { email: string; bits: number }[], initial: boolean): string {
  const byDomain = new Map<string, string[]>();
  for (const { email, bits } of entries) {
    const at = email.lastIndexOf('@');
    if (at < 1 || bits === 0) continue;
    const domain = email.slice(at + 1);
    const list = byDomain.get(domain) ?? [];
    list.push(`<c n="${esc(email.slice(0, at))}" l="${bits}" t="1"/>`);
    byDomain.set(domain, list);
  }
  const ds = [...byDomain].map(([d, cs]) => `<d n="${esc(d)}">${cs.join('')}</d>`).join('');
  return `<ml${initial ? ' l="1"' : ''}>${ds}</ml>`;
}

/** Reads an ADL/RML payload the server pushes: contacts with their list bits and friendly names. */
export function parseListPayload(xml: string): { email: string; bits: number; nickname?: string }[] {
  const doc = parseXml(xml, 'ADL payload');
  const out: { email: string; bits: number; nickname?: string }[] = [];
  for (const d of findAll(doc, 'd')) {
    const domain = d.attrs.n;
    for (const c of findAll(d, 'c')) {
      if (!domain || !c.attrs.n) continue;
      let nickname: string | undefined;
      if (c.attrs.f !== undefined) {
        try {
          nickname = decodeURIComponent(c.attrs.f);
        } catch {
          nickname = c.attrs.f;
        }
      }
      out.push({ email: `${c.attrs.n}@${domain}`.toLowerCase(), bits: Number(c.attrs.l) || 0, nickname });
    }
  }
  return out;
}

export { find };

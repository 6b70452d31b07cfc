// The web services MSNP13+ clients use, on the simulator's HTTP listener
// (Escargot serves them the same way, all from one host):
//   /RST.srf, /RST2.srf              Passport 3.0 security token service
//   /abservice/abservice.asmx        address book: contacts, groups, the "Me" contact
//   /abservice/SharingService.asmx   memberships: Allow, Block, Reverse, Pending
//   /OimWS/oim.asmx                  storing offline messages (Store, Store2)
//   /rsi/rsi.asmx                    reading them (GetMetadata, GetMessage, DeleteMessages)
// Each checks the ticket of the right service, and answers the documented
// faults (FailedAuthentication, ContactAlreadyExists, AuthenticationFailed
// with a LockKeyChallenge, SystemUnavailable, ...).

import { randomInt } from 'node:crypto';
import type { Account, AccountStore, ListName, StoredOim } from './accounts.ts';
import { MSNP11_KEY_PAIRS, msnp11ChallengeResponse } from './challenge.ts';
import { formatOim, mailData, storeOim } from './oim.ts';
import { allows } from './presence.ts';
import { action, type Element, envelope, esc, fault, find, findAll, localName, parseXml, text } from './soap.ts';
import type { TokenAuthority } from './tokens.ts';

const AB_NS = 'http://www.msn.com/webservices/AddressBook';
const RSI_NS = 'http://www.hotmail.msn.com/ws/2004/09/oim/rsi';
const OIM_NS_2004 = 'http://messenger.msn.com/ws/2004/09/oim/';
const OIM_NS_2006 = 'http://messenger.live.com/ws/2006/09/oim/';

/** What the services tell the notification server about. */
export interface ServiceHooks {
  /** A list of `owner` changed through a service (the other side may need telling). */
  listChanged(owner: Account, contact: string, list: ListName, added: boolean): void;
  /** An offline message was stored for an account (online endpoints hear of it). */
  oimStored(to: Account, oim: StoredOim): void;
}

export interface ServiceOptions {
  /** false: a server without offline messages (the OIM and RSI paths answer 404). */
  offlineMessages: boolean;
  log(email: string | undefined, text: string): void;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

export class WebServices {
  /** Lock key challenges handed out by the OIM service, per account. */
  private readonly lockChallenges = new Map<string, string>();

  constructor(
    private readonly accounts: AccountStore,
    private readonly tokens: TokenAuthority,
    private readonly hooks: ServiceHooks,
    private readonly options: ServiceOptions,
  ) {}

  /** Answers a POST; undefined when the path is not a service here. */
  handle(path: string, body: string): HttpAnswer | undefined {
    switch (path) {
      case '/RST.srf':
      case '/RST2.srf':
        return this.rst(body);
      case '/abservice/abservice.asmx':
        return this.addressBook(body);
      case '/abservice/SharingService.asmx':
        return this.sharing(body);
      case '/OimWS/oim.asmx':
        return this.options.offlineMessages ? this.oimStore(body) : { status: 404, body: 'not found' };
      case '/rsi/rsi.asmx':
        return this.options.offlineMessages ? this.rsi(body) : { status: 404, body: 'not found' };
      default:
        return undefined;
    }
  }

  // ---- Passport 3.0 (RST.srf)

  private rst(body: string): HttpAnswer {
    const doc = parseXml(body);
    if (!doc) return { status: 500, body: fault('Client', 'Invalid request') };
    const email = (text(doc, 'Username') ?? '').toLowerCase();
    const password = text(doc, 'Password');
    const account = this.accounts.get(email);
    if (!account || password !== account.password) {
      this.options.log(email, 'RST.srf: authentication failed');
      return {
        status: 200,
        body: envelope(
          '<S:Fault xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><faultcode>wsse:FailedAuthentication</faultcode><faultstring>Authentication Failure</faultstring></S:Fault>',
        ),
      };
    }
    const now = new Date();
    const expires = new Date(now.getTime() + 24 * 3600_000);
    const responses = findAll(doc, 'RequestSecurityToken').map((rst) => {
      const domain = text(rst, 'Address') ?? '';
      const lifetime = `<wst:LifeTime><wsu:Created>${now.toISOString()}</wsu:Created><wsu:Expires>${expires.toISOString()}</wsu:Expires></wst:LifeTime>`;
      const applies = `<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>${esc(domain)}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>`;
      if (domain === 'http://Passport.NET/tb') {
        return `<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:legacy</wst:TokenType>${applies}${lifetime}</wst:RequestSecurityTokenResponse>`;
      }
      const issued = this.tokens.issue(email, domain);
      return (
        `<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>${applies}${lifetime}` +
        `<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact">${esc(issued.token)}</wsse:BinarySecurityToken></wst:RequestedSecurityToken>` +
        (issued.secret ? `<wst:RequestedProofToken><wst:BinarySecret>${issued.secret}</wst:BinarySecret></wst:RequestedProofToken>` : '') +
        '</wst:RequestSecurityTokenResponse>'
      );
    });
    this.options.log(email, `RST.srf: ${responses.length} tokens`);
    return {
      status: 200,
      body:
        '<?xml version="1.0" encoding="utf-8"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>' +
        '<wst:RequestSecurityTokenResponseCollection xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust" ' +
        'xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" ' +
        'xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing">' +
        `${responses.join('')}</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>`,
    };
  }

  // ---- address book and sharing

  /** The account a contacts.msn.com ticket belongs to. */
  private abUser(doc: Element): Account | undefined {
    const t = this.tokens.check(text(doc, 'TicketToken'), ['contacts.msn.com']);
    return t ? this.accounts.get(t.email) : undefined;
  }

  private abFault(code: string, message: string): HttpAnswer {
    return {
      status: 500,
      body: fault('Client', message, `<errorcode xmlns="${AB_NS}">${code}</errorcode><errorstring xmlns="${AB_NS}">${esc(message)}</errorstring>`),
    };
  }

  private ok(name: string, result = ''): HttpAnswer {
    return { status: 200, body: envelope(`<${name}Response xmlns="${AB_NS}">${result}</${name}Response>`) };
  }

  private addressBook(body: string): HttpAnswer {
    const doc = parseXml(body);
    const act = doc && action(doc);
    if (!doc || !act) return { status: 500, body: fault('Client', 'Invalid request') };
    const me = this.abUser(doc);
    if (!me) return this.abFault('TicketExpired', 'bad or missing contacts.msn.com ticket');
    const name = localName(act);
    this.options.log(me.email, `abservice ${name}`);
    const accounts = this.accounts;
    switch (name) {
      case 'ABFindAll':
        return this.ok('ABFindAll', `<ABFindAllResult>${this.findAllResult(me)}</ABFindAllResult>`);
      case 'ABContactAdd': {
        const email = (text(act, 'passportName') ?? '').toLowerCase();
        if (!email.includes('@')) return this.abFault('BadEmailArgument', 'bad e-mail');
        if (!accounts.get(email)) return this.abFault('InvalidPassportUser', `${email} is not a Passport account`);
        if (accounts.inList(me, email, 'FL')) return this.abFault('ContactAlreadyExists', 'Contact Already Exists');
        accounts.addToList(me, email, 'FL');
        this.hooks.listChanged(me, email, 'FL', true);
        return this.ok('ABContactAdd', `<ABContactAddResult><guid>${accounts.entry(me, email).guid}</guid></ABContactAddResult>`);
      }
      case 'ABContactDelete': {
        for (const id of findAll(act, 'contactId').map((e) => e.getText())) {
          const entry = accounts.findByGuid(me, id);
          if (!entry?.lists.has('FL')) return this.abFault('ContactDoesNotExist', 'Contact Does Not Exist');
          const email = entry.email;
          accounts.removeFromList(me, email, 'FL');
          this.hooks.listChanged(me, email, 'FL', false);
        }
        return this.ok('ABContactDelete');
      }
      case 'ABGroupAdd': {
        const groupName = text(act, 'name') ?? '';
        if ([...me.groups.values()].some((g) => g.name === groupName)) return this.abFault('GroupAlreadyExists', 'Group Already Exists');
        const g = accounts.addGroup(me, groupName);
        return this.ok('ABGroupAdd', `<ABGroupAddResult><guid>${g.guid}</guid></ABGroupAddResult>`);
      }
      case 'ABGroupDelete': {
        for (const id of findAll(act, 'guid').map((e) => e.getText())) {
          if (!me.groups.delete(id)) return this.abFault('GroupDoesNotExist', 'Group Does Not Exist');
          for (const entry of me.contacts.values()) entry.groups.delete(id);
        }
        accounts.touch(me);
        return this.ok('ABGroupDelete');
      }
      case 'ABGroupUpdate': {
        for (const g of findAll(act, 'Group')) {
          const group = me.groups.get(text(g, 'groupId') ?? '');
          if (!group) return this.abFault('GroupDoesNotExist', 'Group Does Not Exist');
          group.name = text(g, 'name') ?? group.name;
        }
        accounts.touch(me);
        return this.ok('ABGroupUpdate');
      }
      case 'ABGroupContactAdd':
      case 'ABGroupContactDelete': {
        const groupId = text(find(act, 'groupFilter') ?? act, 'guid') ?? '';
        if (!me.groups.has(groupId)) return this.abFault('GroupDoesNotExist', 'Group Does Not Exist');
        for (const id of findAll(act, 'contactId').map((e) => e.getText())) {
          const entry = accounts.findByGuid(me, id);
          if (!entry?.lists.has('FL')) return this.abFault('ContactDoesNotExist', 'Contact Does Not Exist');
          if (name === 'ABGroupContactAdd') entry.groups.add(groupId);
          else entry.groups.delete(groupId);
        }
        accounts.touch(me);
        return this.ok(name, name === 'ABGroupContactAdd' ? '<ABGroupContactAddResult><guid>ok</guid></ABGroupContactAddResult>' : '');
      }
      default:
        return { status: 500, body: fault('Client', `unsupported action ${name}`) };
    }
  }

  private findAllResult(me: Account): string {
    const groups = [...me.groups.values()]
      .map((g) => `<Group><groupId>${g.guid}</groupId><groupInfo><groupType>C8529CE2-6EAD-434d-881F-341E17DB3FF8</groupType><name>${esc(g.name)}</name></groupInfo><propertiesChanged /><fDeleted>false</fDeleted></Group>`)
      .join('');
    const contacts = [...me.contacts.values()]
      .filter((c) => c.lists.has('FL'))
      .map(
        (c) =>
          `<Contact><contactId>${c.guid}</contactId><contactInfo>` +
          (c.groups.size > 0 ? `<groupIds>${[...c.groups].map((g) => `<guid>${g}</guid>`).join('')}</groupIds>` : '') +
          `<contactType>Regular</contactType><quickName>${esc(c.nickname)}</quickName><passportName>${esc(c.email)}</passportName>` +
          `<IsPassportNameHidden>false</IsPassportNameHidden><displayName>${esc(c.nickname)}</displayName><puid>0</puid>` +
          `<CID>0</CID><isMessengerUser>true</isMessengerUser></contactInfo><propertiesChanged /><fDeleted>false</fDeleted></Contact>`,
      )
      .join('');
    const meContact =
      `<Contact><contactId>${'00000000-0000-0000-0000-000000000001'}</contactId><contactInfo><contactType>Me</contactType>` +
      `<passportName>${esc(me.email)}</passportName><displayName>${esc(me.friendlyName)}</displayName><isMessengerUser>true</isMessengerUser>` +
      '</contactInfo></Contact>';
    return `<groups>${groups}</groups><contacts>${meContact}${contacts}</contacts><ab><abId>00000000-0000-0000-0000-000000000000</abId></ab>`;
  }

  private sharing(body: string): HttpAnswer {
    const doc = parseXml(body);
    const act = doc && action(doc);
    if (!doc || !act) return { status: 500, body: fault('Client', 'Invalid request') };
    const me = this.abUser(doc);
    if (!me) return this.abFault('TicketExpired', 'bad or missing contacts.msn.com ticket');
    const name = localName(act);
    this.options.log(me.email, `SharingService ${name}`);
    if (name === 'FindMembership') {
      const member = (email: string, display: string) =>
        `<Member xsi:type="PassportMember"><MembershipId>0</MembershipId><Type>Passport</Type><DisplayName>${esc(display)}</DisplayName>` +
        `<State>Accepted</State><Deleted>false</Deleted><PassportName>${esc(email)}</PassportName></Member>`;
      const roles: [string, (l: Set<ListName>) => boolean][] = [
        ['Allow', (l) => l.has('AL')],
        ['Block', (l) => l.has('BL')],
        ['Reverse', (l) => l.has('RL')],
        // Someone who added us and has been neither allowed nor blocked waits on Pending.
        ['Pending', (l) => l.has('RL') && !l.has('AL') && !l.has('BL')],
      ];
      const memberships = roles
        .map(([role, on]) => {
          const members = [...me.contacts.values()].filter((c) => on(c.lists)).map((c) => member(c.email, this.accounts.get(c.email)?.friendlyName ?? c.email));
          return `<Membership><MemberRole>${role}</MemberRole><Members>${members.join('')}</Members></Membership>`;
        })
        .join('');
      return this.ok(
        'FindMembership',
        `<FindMembershipResult><Services><Service><Memberships>${memberships}</Memberships><Info><Handle><Id>1</Id><Type>Messenger</Type><ForeignId /></Handle></Info></Service></Services></FindMembershipResult>`,
      );
    }
    if (name === 'AddMember' || name === 'DeleteMember') {
      for (const m of findAll(act, 'Membership')) {
        const role = text(m, 'MemberRole');
        const list: ListName | undefined = role === 'Allow' ? 'AL' : role === 'Block' ? 'BL' : undefined;
        if (!list) return this.abFault('InvalidMembership', `cannot change ${role}`);
        for (const email of findAll(m, 'PassportName').map((e) => e.getText().toLowerCase())) {
          if (!this.accounts.get(email)) return this.abFault('InvalidPassportUser', `${email} is not a Passport account`);
          if (name === 'AddMember') {
            if (this.accounts.inList(me, email, list)) return this.abFault('MemberAlreadyExists', 'Member already exists');
            this.accounts.addToList(me, email, list);
          } else {
            if (!this.accounts.inList(me, email, list)) return this.abFault('MemberDoesNotExist', 'Member does not exist');
            this.accounts.removeFromList(me, email, list);
          }
          this.hooks.listChanged(me, email, list, name === 'AddMember');
        }
      }
      return this.ok(name);
    }
    return { status: 500, body: fault('Client', `unsupported action ${name}`) };
  }

  // ---- offline messages

  private oimStore(body: string): HttpAnswer {
    const doc = parseXml(body);
    if (!doc) return { status: 500, body: fault('Client', 'Invalid request') };
    const ns = find(doc, 'From')?.attrs.xmlns === OIM_NS_2004 ? OIM_NS_2004 : OIM_NS_2006;
    const ticket = find(doc, 'Ticket');
    const token = this.tokens.check(ticket?.attrs.passport, ['messenger.msn.com', 'messengersecure.live.com']);
    const sender = token && this.accounts.get(token.email);
    const challenge = sender && this.lockChallenges.get(sender.email);
    const appid = ticket?.attrs.appid ?? '';
    const key = MSNP11_KEY_PAIRS.get(appid);
    const lockOk =
      challenge !== undefined && key !== undefined && ticket?.attrs.lockkey === msnp11ChallengeResponse(challenge, appid, key);
    if (!sender || !lockOk) {
      // The first Store of a client always lands here: it learns the challenge and retries.
      const fresh = String(randomInt(1e9, 2e9));
      if (sender) this.lockChallenges.set(sender.email, fresh);
      this.options.log(sender?.email, 'OIM Store: AuthenticationFailed (lock key challenge)');
      return {
        status: 500,
        body: fault(
          'AuthenticationFailed',
          'Exception of type System.Web.Services.Protocols.SoapException was thrown.',
          `<TweenerChallenge xmlns="${ns}">ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1</TweenerChallenge><LockKeyChallenge xmlns="${ns}">${fresh}</LockKeyChallenge>`,
          ns,
        ),
      };
    }
    const from = find(doc, 'From');
    const to = this.accounts.get(find(doc, 'To')?.attrs.memberName ?? '');
    if (from?.attrs.memberName?.toLowerCase() !== sender.email || !to || !allows(to, sender.email)) {
      return { status: 500, body: fault('SystemUnavailable', 'Exception of type System.Web.Services.Protocols.SoapException was thrown.', '', ns) };
    }
    const content = (text(doc, 'Content') ?? '').replace(/\r\n/g, '\n');
    const split = content.indexOf('\n\n');
    const headers = new Map<string, string>();
    for (const line of content.slice(0, Math.max(0, split)).split('\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const seq = text(doc, 'MessageNumber') ?? '';
    const b64 = content.slice(split + 2);
    const invalid =
      split < 0 ||
      headers.get('mime-version') !== '1.0' ||
      !headers.get('content-type')?.startsWith('text/plain') ||
      headers.get('content-transfer-encoding') !== 'base64' ||
      headers.get('x-oim-message-type') !== 'OfflineMessage' ||
      !/^\{?[0-9A-Fa-f-]{36}\}?$/.test(headers.get('x-oim-run-id') ?? '') ||
      headers.get('x-oim-sequence-num') !== seq ||
      b64.split('\n').some((l) => l.length > 77);
    if (invalid) return { status: 500, body: fault('InvalidContent', 'invalid content', '', ns) };
    const stored = storeOim(to, {
      from: sender.email,
      fromFriendly: from.attrs.friendlyName ?? '',
      to: to.email,
      text: Buffer.from(b64.replace(/\s+/g, ''), 'base64').toString('utf8'),
      sent: new Date(),
      runId: (headers.get('x-oim-run-id') ?? '').replace(/[{}]/g, ''),
      sequence: Number(seq),
    });
    this.options.log(sender.email, `OIM stored for ${to.email}`);
    this.hooks.oimStored(to, stored);
    return {
      status: 200,
      body: envelope(
        `<StoreResponse xmlns="${ns}"><PointsConsumed>0</PointsConsumed></StoreResponse>`,
        `<SequenceAcknowledgment xmlns="http://schemas.xmlsoap.org/ws/2003/03/rm"><Identifier xmlns="http://schemas.xmlsoap.org/ws/2002/07/utility">http://messenger.msn.com</Identifier><AcknowledgmentRange Upper="${seq}" Lower="${seq}" /></SequenceAcknowledgment>`,
      ),
    };
  }

  private rsi(body: string): HttpAnswer {
    const doc = parseXml(body);
    const act = doc && action(doc);
    if (!doc || !act) return { status: 500, body: fault('Client', 'Schema validation error') };
    const token = this.tokens.checkParts(text(find(doc, 'PassportCookie') ?? doc, 't'), ['messenger.msn.com']);
    const me = token && this.accounts.get(token.email);
    if (!me) return { status: 500, body: fault('Client', 'Schema validation error') };
    const name = localName(act);
    this.options.log(me.email, `rsi ${name}`);
    if (name === 'GetMetadata') {
      return { status: 200, body: envelope(`<GetMetadataResponse xmlns="${RSI_NS}">${mailData(me.oims, false, Number.POSITIVE_INFINITY)}</GetMetadataResponse>`) };
    }
    if (name === 'GetMessage') {
      const oim = me.oims.find((o) => o.id === text(act, 'messageId'));
      if (!oim) return { status: 500, body: fault('Client', 'Schema validation error') };
      return {
        status: 200,
        body: envelope(`<GetMessageResponse xmlns="${RSI_NS}"><GetMessageResult>${esc(formatOim(oim))}</GetMessageResult></GetMessageResponse>`),
      };
    }
    if (name === 'DeleteMessages') {
      const ids = findAll(act, 'messageId').map((e) => e.getText());
      if (ids.length === 0 || ids.some((id) => !me.oims.some((o) => o.id === id))) {
        return { status: 500, body: fault('Client', 'Schema validation error') };
      }
      me.oims = me.oims.filter((o) => !ids.includes(o.id));
      return { status: 200, body: envelope(`<DeleteMessagesResponse xmlns="${RSI_NS}" />`) };
    }
    return { status: 500, body: fault('Client', `unsupported action ${name}`) };
  }
}

/**
 * Passport 3.0: the SOAP security token service (RST.srf) that MSNP13+
 * clients log in with. One request names every service a token is wanted
 * for; the reply holds a compact ticket ("t=...&p=") per service, and for
 * messengerclear.live.com (MSNP15+ SSO) also the BinarySecret the MBI_KEY
 * answer is computed from.
 */
import { MsnAuthError, MsnProtocolError } from '../errors.ts';
import type { MsnTrace } from '../trace.ts';
import { postSoap } from './http.ts';
import { esc, findAll, parseXml, soapFault, text } from './xml.ts';

export interface TokenRequest {
  /** The service (wsa:Address), e.g. "contacts.msn.com". */
  domain: string;
  /** The policy (wsse:PolicyReference URI), e.g. "MBI", "MBI_KEY_OLD" or "?id=507". */
  policy?: string;
}

export interface SecurityToken {
  token: string;
  /** Base64 proof key, for the SSO challenge (messengerclear.live.com only). */
  secret?: string;
}

const HOSTING_APP = '{7108E71A-9926-4FCB-BCC9-9A9D3F32E423}';

export function buildRstRequest(email: string, password: string, tokens: TokenRequest[]): string {
  const rsts = [{ domain: 'http://Passport.NET/tb' }, ...tokens]
    .map(
      (t, i) =>
        `<wst:RequestSecurityToken Id="RST${i}"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>` +
        `<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>${esc(t.domain)}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>` +
        ('policy' in t && t.policy ? `<wsse:PolicyReference URI="${esc(t.policy)}"></wsse:PolicyReference>` : '') +
        '</wst:RequestSecurityToken>',
    )
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    '<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" ' +
    'xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy" ' +
    'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" ' +
    'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing" xmlns:wssc="http://schemas.xmlsoap.org/ws/2004/04/sc" ' +
    'xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust"><Header>' +
    '<ps:AuthInfo xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="PPAuthInfo">' +
    `<ps:HostingApp>${HOSTING_APP}</ps:HostingApp><ps:BinaryVersion>4</ps:BinaryVersion><ps:UIVersion>1</ps:UIVersion>` +
    '<ps:Cookies></ps:Cookies><ps:RequestParams>AQAAAAIAAABsYwQAAAAxMDMz</ps:RequestParams></ps:AuthInfo>' +
    `<wsse:Security><wsse:UsernameToken Id="user"><wsse:Username>${esc(email)}</wsse:Username>` +
    `<wsse:Password>${esc(password)}</wsse:Password></wsse:UsernameToken></wsse:Security></Header>` +
    `<Body><ps:RequestMultipleSecurityTokens xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="RSTS">${rsts}` +
    '</ps:RequestMultipleSecurityTokens></Body></Envelope>'
  );
}

/** Asks the token service for `tokens`; resolves with one entry per service granted. */
export async function requestTokens(opts: {
  url: string;
  email: string;
  password: string;
  tokens: TokenRequest[];
  timeout: number;
  trace?: MsnTrace;
}): Promise<Map<string, SecurityToken>> {
  const reply = await postSoap({
    url: opts.url,
    action: 'http://schemas.microsoft.com/Passport/SoapServices/PPCRL/RequestMultipleSecurityTokens',
    body: buildRstRequest(opts.email, opts.password, opts.tokens),
    timeout: opts.timeout,
    trace: opts.trace,
  });
  const doc = parseXml(reply.body, 'security token service');
  const fault = soapFault(doc);
  if (fault) {
    if (/FailedAuthentication/i.test(fault.code)) throw new MsnAuthError('the security token service refused the credentials', 911);
    throw new MsnProtocolError(`security token service fault ${fault.code}: ${fault.text}`);
  }
  if (reply.status !== 200) throw new MsnProtocolError(`security token service answered HTTP ${reply.status}`);
  const out = new Map<string, SecurityToken>();
  for (const rstr of findAll(doc, 'RequestSecurityTokenResponse')) {
    const domain = text(rstr, 'Address');
    const token = text(rstr, 'BinarySecurityToken');
    if (!domain || !token) continue;
    out.set(domain, { token, secret: text(rstr, 'BinarySecret') || undefined });
  }
  for (const t of opts.tokens) {
    if (!out.has(t.domain)) throw new MsnProtocolError(`security token service gave no token for ${t.domain}`);
  }
  return out;
}

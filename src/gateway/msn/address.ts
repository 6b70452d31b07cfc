// Contact addressing (XEP-0100 §6.3, PyMSNt style): an MSN address
// `friend@hotmail.com` is the JID `friend%hotmail.com@msn.example.org`.
// The mapping is one pure, reversible pair of functions. MSN addresses are
// case-insensitive, so they are lower-cased (as JID localparts are).
// Characters a JID localpart cannot hold are escaped XEP-0106 style
// (`o'brien` → `o\27brien`), and `%` and `\` too, so the last `%` is always
// the separator and every address round-trips.

const ESCAPES: Record<string, string> = {
  ' ': '\\20',
  '"': '\\22',
  '%': '\\25',
  '&': '\\26',
  "'": '\\27',
  '/': '\\2f',
  ':': '\\3a',
  '<': '\\3c',
  '>': '\\3e',
  '@': '\\40',
  '\\': '\\5c',
};
const UNESCAPES = new Map(Object.entries(ESCAPES).map(([c, e]) => [e, c]));
const EMAIL = /^[^@\s]+@[\p{L}\p{N}.-]+\.[\p{L}\p{N}-]+$/iu;

/** Whether a string looks like an MSN address (user@domain.tld). */
export function isMsnAddress(s: string): boolean {
  return EMAIL.test(s) && s.length <= 320;
}

/** `friend@hotmail.com` → `friend%hotmail.com` (the JID localpart). */
export function emailToLocal(email: string): string {
  if (!isMsnAddress(email)) throw new Error(`not an MSN address: ${email}`);
  const lower = email.toLowerCase();
  const at = lower.lastIndexOf('@');
  const user = lower.slice(0, at).replace(/[ "%&'/:<>@\\]/g, (c) => ESCAPES[c]!);
  return `${user}%${lower.slice(at + 1)}`;
}

/** The reverse of emailToLocal; null when the localpart is not a mapped address. */
export function localToEmail(local: string): string | null {
  const sep = local.lastIndexOf('%');
  if (sep <= 0 || sep === local.length - 1) return null;
  const user = local.slice(0, sep).replace(/\\(20|22|25|26|27|2f|3a|3c|3e|40|5c)/g, (e) => UNESCAPES.get(e)!);
  const email = `${user}@${local.slice(sep + 1)}`;
  return isMsnAddress(email) ? email : null;
}

export function emailToJid(email: string, gatewayDomain: string): string {
  return `${emailToLocal(email)}@${gatewayDomain}`;
}

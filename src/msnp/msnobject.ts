/**
 * MSNObject: the small XML tag that describes a display picture (and other
 * content) in CHG/NLN/ILN and in MSNSLP invitations. SHA1D identifies the
 * data itself, so a client fetches a picture only when SHA1D changes and can
 * verify what it received; SHA1C checks the tag's fields.
 */
import { createHash } from 'node:crypto';

export interface MsnObject {
  creator: string;
  size: number;
  /** 3 = display picture ("user tile"), 2 = custom emoticon, ... */
  type: number;
  location: string;
  /** Base64 of a UTF-16LE friendly name; "AAA=" (a NUL) when unused. */
  friendly: string;
  /** Base64 SHA-1 of the data. */
  sha1d: string;
  /** Base64 SHA-1 of the field string; absent on some third-party objects. */
  sha1c?: string;
  /** Attributes we do not interpret, kept so the object round-trips. */
  extra?: Record<string, string>;
}

export const MSNOBJ_DISPLAY_PICTURE = 3;

export function sha1Base64(data: Buffer | string): string {
  return createHash('sha1').update(data).digest('base64');
}

/** SHA1C: SHA-1 over "Creator<v>Size<v>Type<v>Location<v>Friendly<v>SHA1D<v>". */
export function computeSha1c(o: Omit<MsnObject, 'sha1c'>): string {
  return sha1Base64(
    `Creator${o.creator}Size${o.size}Type${o.type}Location${o.location}Friendly${o.friendly}SHA1D${o.sha1d}`,
  );
}

/** Describes a display picture owned by `creator`. */
export function createMsnObject(
  creator: string,
  data: Buffer,
  type = MSNOBJ_DISPLAY_PICTURE,
  location = 'TFR2C2.tmp',
): MsnObject {
  const base = { creator, size: data.length, type, location, friendly: 'AAA=', sha1d: sha1Base64(data) };
  return { ...base, sha1c: computeSha1c(base) };
}

function escapeAttr(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function unescapeAttr(v: string): string {
  return v
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

export function serializeMsnObject(o: MsnObject): string {
  const attrs: [string, string][] = [
    ['Creator', o.creator],
    ['Size', String(o.size)],
    ['Type', String(o.type)],
    ['Location', o.location],
    ['Friendly', o.friendly],
    ['SHA1D', o.sha1d],
  ];
  if (o.sha1c !== undefined) attrs.push(['SHA1C', o.sha1c]);
  for (const [k, v] of Object.entries(o.extra ?? {})) attrs.push([k, v]);
  return `<msnobj ${attrs.map(([k, v]) => `${k}="${escapeAttr(v)}"`).join(' ')}/>`;
}

/**
 * Parses an MSNObject tag; accepts the URL-encoded form used on the
 * notification server. Returns undefined for "0", empty or malformed input.
 */
export function parseMsnObject(text: string | undefined): MsnObject | undefined {
  if (!text || text === '0') return undefined;
  let xml = text;
  if (!xml.trimStart().startsWith('<')) {
    try {
      xml = decodeURIComponent(xml);
    } catch {
      return undefined;
    }
  }
  const m = /<msnobj\s([^>]*?)\/?>/i.exec(xml);
  if (!m) return undefined;
  const attrs = new Map<string, string>();
  for (const a of m[1]!.matchAll(/([A-Za-z0-9_]+)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
    attrs.set(a[1]!, unescapeAttr(a[3] ?? a[4] ?? ''));
  }
  const sha1d = attrs.get('SHA1D');
  if (!sha1d) return undefined;
  const known = new Set(['Creator', 'Size', 'Type', 'Location', 'Friendly', 'SHA1D', 'SHA1C']);
  const extra: Record<string, string> = {};
  for (const [k, v] of attrs) if (!known.has(k)) extra[k] = v;
  const obj: MsnObject = {
    creator: attrs.get('Creator') ?? '',
    size: Number(attrs.get('Size') ?? '0') || 0,
    type: Number(attrs.get('Type') ?? '0') || 0,
    location: attrs.get('Location') ?? '',
    friendly: attrs.get('Friendly') ?? '',
    sha1d,
    sha1c: attrs.get('SHA1C'),
  };
  if (Object.keys(extra).length > 0) obj.extra = extra;
  return obj;
}

/** True when SHA1C is present and matches the fields. */
export function verifySha1c(o: MsnObject): boolean {
  return o.sha1c !== undefined && o.sha1c === computeSha1c(o);
}

/** True when `data` is exactly what the object describes. */
export function verifyData(o: MsnObject, data: Buffer): boolean {
  return sha1Base64(data) === o.sha1d && (o.size === 0 || o.size === data.length);
}

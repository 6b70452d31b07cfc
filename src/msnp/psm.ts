/**
 * Personal messages (MSNP11 UUX/UBX): a small XML document with the PSM text
 * and the "now playing" CurrentMedia string.
 */

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function unesc(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-fA-F]+);/g, (_, n: string) => String.fromCodePoint(Number.parseInt(n, 16)))
    .replace(/&amp;/g, '&');
}

export function buildPsmPayload(psm: string, currentMedia = '', machineGuid?: string): string {
  const guid = machineGuid ? `<MachineGuid>${esc(machineGuid)}</MachineGuid>` : '';
  return `<Data><PSM>${esc(psm)}</PSM><CurrentMedia>${esc(currentMedia)}</CurrentMedia>${guid}</Data>`;
}

function element(xml: string, name: string): string {
  const m = new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`, 'i').exec(xml);
  return m ? unesc(m[1]!) : '';
}

export function parsePsmPayload(xml: string): { psm: string; currentMedia: string } {
  return { psm: element(xml, 'PSM'), currentMedia: element(xml, 'CurrentMedia') };
}

// Every domain this configuration serves: the main domain and each enabled
// service domain (msn.<domain> today; conference., upload. and others as
// they are added). A service with its own domain has a configuration
// section with a `domain` key (and `enabled`, when it can be off), so this
// list follows new services without naming them: the self-signed
// certificate, ACME and `jabberfly check` all read it.
import type { Config } from './schema.ts';

/** Whether upload.<domain> runs: enabled, with somewhere to serve files from (https listener or upload.url). */
export function uploadsServed(config: Config): boolean {
  return config.upload.enabled && (config.https.port !== false || config.upload.url !== '');
}

export function servedDomains(config: Config): string[] {
  const out = [config.domain];
  for (const section of Object.values(config as unknown as Record<string, unknown>)) {
    if (typeof section !== 'object' || section === null || Array.isArray(section)) continue;
    const s = section as { domain?: unknown; enabled?: unknown };
    if (typeof s.domain !== 'string' || !s.domain || s.enabled === false) continue;
    if (s === config.upload && !uploadsServed(config)) continue;
    if (!out.includes(s.domain)) out.push(s.domain);
  }
  return out;
}

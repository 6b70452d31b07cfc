// The release version, from package.json. The single-executable build has
// no package.json beside it: its bundler defines JABBERFLY_VERSION instead.
import { readFileSync } from 'node:fs';

declare const JABBERFLY_VERSION: string | undefined;

export const VERSION: string =
  typeof JABBERFLY_VERSION === 'string'
    ? JABBERFLY_VERSION
    : (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

// The built-in web client: Converse.js from its npm package, started by a
// small page pre-configured for this server. Settings travel as inert JSON
// and the start-up code is a separate file, so the Content-Security-Policy
// can forbid inline scripts. Paths are relative, so the client also works
// behind a reverse proxy that mounts us under a sub-path.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { converseDir, insideExecutable } from '../runtime/bundled-assets.ts';
import { escapeXML } from '../xml/element.ts';

export const CONVERSE_PREFIX = '/converse/';
export const START_SCRIPT_PATH = '/web-client.js';
/** libomemo fetches its WebAssembly next to the page, not next to itself. */
export const OMEMO_WASM_PATH = '/curve25519_compiled.wasm';

/** Where the converse.js package keeps its built files, or null if it is not installed. */
export function converseDistDir(): string | null {
  if (insideExecutable()) return converseDir();
  try {
    return dirname(createRequire(import.meta.url).resolve('converse.js/dist/converse.min.js'));
  } catch {
    return null;
  }
}

export interface WebClientOptions {
  domain: string;
  registrationOpen: boolean;
  /** The group chat service, so a room is opened by its name alone. */
  mucDomain?: string;
}

export function webClientPage(o: WebClientOptions): string {
  // Converse settings (https://conversejs.org/docs/configuration); the
  // WebSocket URL is added in the page, from wherever it was loaded.
  const settings = {
    assets_path: CONVERSE_PREFIX.slice(1),
    authentication: 'login',
    discover_connection_methods: false,
    default_domain: o.domain,
    domain_placeholder: o.domain,
    allow_registration: o.registrationOpen,
    registration_domain: o.domain,
    view_mode: 'fullscreen',
    show_controlbox_by_default: true,
    // End-to-end encryption (XEP-0384) whenever the contact has OMEMO devices:
    // device lists and bundles live in PEP (modules/pep.ts).
    omemo_default: true,
    muc_domain: o.mucDomain,
  };
  // "<" escaped so no value can end the script element early.
  const json = JSON.stringify(settings).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat on ${escapeXML(o.domain)}</title>
<link rel="icon" href="${CONVERSE_PREFIX.slice(1)}images/favicon.ico">
<link rel="stylesheet" href="${CONVERSE_PREFIX.slice(1)}converse.min.css">
<script type="application/json" id="converse-settings">${json}</script>
<script type="module" src="${START_SCRIPT_PATH.slice(1)}"></script>
</head>
<body class="converse-fullscreen">
<noscript>This chat needs JavaScript.</noscript>
</body>
</html>
`;
}

export const START_SCRIPT = `import converse from '.${CONVERSE_PREFIX}converse.min.js';

const settings = JSON.parse(document.getElementById('converse-settings').textContent);
const ws = new URL('xmpp-websocket', document.baseURI);
ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
settings.websocket_url = ws.href;
converse.initialize(settings);
`;

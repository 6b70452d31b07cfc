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
  /** The page's name (http.siteName, else the domain). */
  siteName: string;
  registrationOpen: boolean;
  /** The MSN transport, to tell users where it is (and whether it is set up). */
  msn?: { domain: string; configured: boolean };
  /** Where pictures, sound and video in messages may be shown from: our own domains only. */
  mediaDomains: string[];
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
    // The site's own page: no About box linking elsewhere, and nothing
    // fetched from other sites (the Content-Security-Policy holds it too).
    show_client_info: false,
    allowed_image_domains: o.mediaDomains,
    allowed_audio_domains: o.mediaDomains,
    allowed_video_domains: o.mediaDomains,
    embed_3rd_party_media_players: false,
    whitelisted_plugins: ['jabberfly-site'],
  };
  const site = {
    name: o.siteName,
    msn: o.msn
      ? o.msn.configured
        ? `Your MSN contacts can be here too: register once with the MSN transport, ${o.msn.domain}, from a client with service discovery (Gajim, Psi, Pidgin: Service Discovery → ${o.msn.domain} → Register); they then appear in your contacts here.`
        : `This server has an MSN transport (${o.msn.domain}), not set up yet by its administrator.`
      : '',
  };
  // "<" escaped so no value can end the script element early.
  const json = JSON.stringify(settings).replace(/</g, '\\u003c');
  const siteJson = JSON.stringify(site).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXML(o.siteName)}</title>
<link rel="icon" href="${CONVERSE_PREFIX.slice(1)}images/favicon.ico">
<link rel="stylesheet" href="${CONVERSE_PREFIX.slice(1)}converse.min.css">
<script type="application/json" id="converse-settings">${json}</script>
<script type="application/json" id="site-settings">${siteJson}</script>
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
const site = JSON.parse(document.getElementById('site-settings').textContent);
const ws = new URL('xmpp-websocket', document.baseURI);
ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
settings.websocket_url = ws.href;

// The site's name where Converse shows its own, no links to Converse's
// project pages, and a footer about this server (where Converse lists its
// sponsors, with pictures from its website).
function text(tag, className, content) {
  const e = document.createElement(tag);
  e.className = className;
  e.textContent = content;
  return e;
}
class SiteBrand extends HTMLElement {
  connectedCallback() {
    // Converse's own layout classes, with the site's name and no link away.
    const name = text('span', 'brand-name', '');
    name.append(text('span', 'brand-name__text', site.name));
    const wrapper = text('span', 'brand-name-wrapper brand-name-wrapper--fullscreen', '');
    wrapper.append(name);
    const heading = text('div', 'brand-heading', '');
    heading.append(wrapper);
    this.replaceChildren(heading);
  }
}
// Converse's top bar links to its project's pages: nothing here.
class SiteNavbar extends HTMLElement {}
class SiteFooter extends HTMLElement {
  connectedCallback() {
    const footer = text('footer', 'footer mt-auto py-3 text-center', '');
    footer.append(text('p', 'brand-subtitle subdued', 'Chat with anyone on XMPP (Jabber), from here or from any XMPP app.'));
    if (site.msn) footer.append(text('p', 'brand-subtitle subdued site-msn', site.msn));
    this.replaceChildren(footer);
  }
}
converse.plugins.add('jabberfly-site', {
  initialize() {
    this._converse.api.elements.define('converse-brand-logo', SiteBrand);
    this._converse.api.elements.define('converse-footer', SiteFooter);
    this._converse.api.elements.define('converse-controlbox-navbar', SiteNavbar);
  },
});
converse.initialize(settings);
`;

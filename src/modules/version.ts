// XEP-0092 Software Version of the server. The operating system is left
// out: it only helps an attacker pick exploits.
import type { Module } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';
import { VERSION } from '../version.ts';


export const versionModule: Module = (host) => {
  host.features.add(NS.version);
  host.hook(`iq-get/host/${NS.version}:query`, (event) => {
    sendResult(
      event,
      el('query', { xmlns: NS.version }, el('name', null, 'jabberfly'), el('version', null, VERSION)),
    );
    return true;
  });
};

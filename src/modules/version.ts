// XEP-0092 Software Version of the server. The operating system is left
// out: it only helps an attacker pick exploits.
import { readFileSync } from 'node:fs';
import type { Module } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export const versionModule: Module = (host) => {
  host.features.add(NS.version);
  host.hook(`iq-get/host/${NS.version}:query`, (event) => {
    sendResult(
      event,
      el('query', { xmlns: NS.version }, el('name', null, 'jabberfly'), el('version', null, pkg.version)),
    );
    return true;
  });
};

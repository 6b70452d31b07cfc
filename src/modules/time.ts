// XEP-0202 Entity Time of the server. Like Prosody, the offset is always
// +00:00: the clock is what matters, the host's time zone is nobody's
// business.
import type { Module } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

export const timeModule: Module = (host) => {
  host.features.add(NS.time);
  host.hook(`iq-get/host/${NS.time}:time`, (event) => {
    // XEP-0082 DateTime in UTC, whole seconds.
    const utc = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    sendResult(event, el('time', { xmlns: NS.time }, el('tzo', null, '+00:00'), el('utc', null, utc)));
    return true;
  });
};

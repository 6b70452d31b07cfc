// XEP-0199 XMPP Ping: the server answers pings to itself and, on the
// account's behalf, to the user's own bare JID (clients use it to check the
// connection). Pings to full JIDs reach the client like any other iq.
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { NS } from '../xml/namespaces.ts';

export const pingModule: Module = (host) => {
  host.features.add(NS.ping);
  const pong = (event: StanzaEvent) => {
    sendResult(event);
    return true;
  };
  host.hook(`iq-get/host/${NS.ping}:ping`, pong);
  host.hook(`iq-get/self/${NS.ping}:ping`, pong);
};

// PyMSNt's original deployment, done by jabberfly: `jabberfly transport`
// (the real command line, as a child process) attached as an XEP-0114
// component to Debian's Prosody 0.12 (its own config, data and certificate
// in a temp folder, run as the `prosody` user on loopback ports), serving
// a Prosody user driven by Debian's slixmpp, with the MSN simulator as the
// network. Two set-ups:
//   - Prosody grants the component roster access with mod_privilege
//     (prosody-modules, XEP-0356): contacts land in the roster by themselves;
//   - no privileges: the transport asks, as PyMSNt did (subscribe requests
//     carrying roster-subsync), and the client accepts.
// Either way: registration, presence both ways, messages both ways.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { MsnSession } from '../../src/msnp/index.ts';
import { MsnSession as Session } from '../../src/msnp/index.ts';
import { generateSelfSigned } from '../../src/tls/certs.ts';
import { freePort, PeerProcess, userIds } from '../helpers/peer-process.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { MsnSimulator } from '../msn-sim/simulator.ts';
import { nextEvent } from './msn-harness.ts';

const DOMAIN = 'pros.example';
const GW = `msn.${DOMAIN}`;
const BOB = `bob%hotmail.com@${GW}`;
const ROSTER = 'jabber:iq:roster';
const SUBSYNC = 'http://delx.cjb.net/protocol/roster-subsync';
const SECRET = 'component-secret';
const JABBERFLY = fileURLToPath(new URL('../../bin/jabberfly.js', import.meta.url));

function prosodyConfig(dir: string, c2sPort: number, componentPort: number, privileged: boolean): string {
  return `-- Written by test/gateway/prosody-component.test.ts
pidfile = "${join(dir, 'prosody.pid')}"
data_path = "${join(dir, 'data')}"
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { ${c2sPort} }
component_ports = { ${componentPort} }
component_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { }
s2s_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
use_ipv6 = false
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "vcard"; "ping"${privileged ? '; "privilege"' : ''} }
modules_disabled = { "admin_shell"; "admin_socket"; "offline"; "c2s_direct_tls"; "s2s" }
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = true
log = { { levels = { min = "debug" }, to = "console" } }
ssl = { certificate = "${join(dir, 'certs', `${DOMAIN}.crt`)}"; key = "${join(dir, 'certs', `${DOMAIN}.key`)}" }
VirtualHost "${DOMAIN}"
${privileged ? `  privileged_entities = { ["${GW}"] = { roster = "both" } }\n` : ''}
Component "${GW}"
  component_secret = "${SECRET}"
${privileged ? '  modules_enabled = { "privilege" }\n' : ''}`;
}

function scenario(privileged: boolean): void {
  const title = privileged
    ? 'jabberfly transport as a component of Prosody, with XEP-0356 roster access (mod_privilege)'
    : 'jabberfly transport as a component of Prosody, without privileges (roster-subsync)';
  describe(title, () => {
    let dir: string;
    let sim: MsnSimulator;
    let prosody: PeerProcess;
    let transport: PeerProcess;
    let pat: SlixClient;
    let bob: MsnSession;
    let iqs = 0;
    const ports = { component: 0 };

    before(async () => {
      sim = new MsnSimulator();
      sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
      sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bobby' });
      sim.addContact('alice@hotmail.com', 'bob@hotmail.com', ['FL', 'AL'], { nickname: 'Bobby', groups: ['Friends'] });
      sim.addContact('bob@hotmail.com', 'alice@hotmail.com');
      const ep = await sim.start();

      const ids = userIds('prosody');
      dir = mkdtempSync(join(tmpdir(), 'jabberfly-prosody-component-'));
      chmodSync(dir, 0o755);
      for (const sub of ['certs', 'data']) mkdirSync(join(dir, sub));
      generateSelfSigned(join(dir, 'certs', `${DOMAIN}.crt`), join(dir, 'certs', `${DOMAIN}.key`), [DOMAIN], 2);
      for (const f of ['certs', 'data', `certs/${DOMAIN}.crt`, `certs/${DOMAIN}.key`, '.']) chownSync(join(dir, f), ids.uid, ids.gid);
      const c2sPort = await freePort();
      const componentPort = await freePort();
      ports.component = componentPort;
      const configFile = join(dir, 'prosody.cfg.lua');
      writeFileSync(configFile, prosodyConfig(dir, c2sPort, componentPort, privileged));
      chownSync(configFile, ids.uid, ids.gid);
      const asProsody = { uid: ids.uid, gid: ids.gid, env: { ...process.env, HOME: dir } };
      execFileSync('prosodyctl', ['--config', configFile, 'register', 'pat', DOMAIN, 'pw'], { ...asProsody, stdio: 'pipe' });
      prosody = new PeerProcess('prosody', 'prosody', ['-F', '--config', configFile], asProsody);
      await prosody.waitOutput(
        new RegExp(`Activated service 'component' on \\[127\\.0\\.0\\.1\\]:${componentPort}`),
        'the component port',
      );

      // The transport's own configuration: MSN network, storage, logs. The
      // component link comes from the command line, as documented.
      const tdir = join(dir, 'transport');
      mkdirSync(tdir);
      const tconfig = join(tdir, 'transport.yaml');
      writeFileSync(
        tconfig,
        [
          'storage:',
          `  path: ${join(tdir, 'storage')}`,
          'msn:',
          `  server: 127.0.0.1:${ep.dispatchPort}`,
          `  nexus: ${ep.nexusUrl}`,
          'log:',
          '  level: debug',
          '',
        ].join('\n'),
      );
      transport = new PeerProcess(
        'jabberfly transport',
        process.execPath,
        [JABBERFLY, 'transport', '--config', tconfig, '--component', `127.0.0.1:${componentPort}`, '--secret', SECRET, '--domain', GW],
        { env: { ...process.env, JABBERFLY_FROM_SOURCE: '1' } },
      );
      await transport.waitOutput(/INFO transport: transport started domain=msn\.pros\.example/, 'the transport to connect', 60000);

      pat = new SlixClient({ jid: `pat@${DOMAIN}/slix`, password: 'pw', port: c2sPort });
      await pat.started(30000);
      pat.send(`<iq type='get' id='roster0'><query xmlns='${ROSTER}'/></iq>`);
      await pat.waitStanza((s) => s.name === 'iq' && s.attrs.id === 'roster0', 'roster');
      pat.send('<presence/>');

      bob = new Session({ email: 'bob@hotmail.com', password: 'bobpw', server: `127.0.0.1:${ep.nsPort}`, nexusUrl: ep.nexusUrl });
      bob.on('error', () => {});
      await bob.login();
    });

    after(async () => {
      if (process.env.COMPONENT_DEBUG) {
        writeFileSync(`${process.env.COMPONENT_DEBUG}${privileged ? '.priv' : ''}`, `${transport?.output}\n-----\n${prosody?.output}`);
      }
      await pat?.stop();
      await bob?.logout().catch(() => {});
      await transport?.stop();
      await prosody?.stop();
      await sim?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const rosterPush = (jid: string, subscription: string) =>
      pat.waitStanza(
        (s) =>
          s.name === 'iq' &&
          s.attrs.type === 'set' &&
          s.getChild('query', ROSTER)?.getChild('item')?.attrs.jid === jid &&
          s.getChild('query', ROSTER)?.getChild('item')?.attrs.subscription === subscription,
        `roster push ${jid} ${subscription}`,
        20000,
      );

    it(privileged ? 'learns its roster privilege from Prosody' : 'is connected to Prosody with no privileges', async () => {
      if (privileged) {
        await transport.waitOutput(/privileges granted server=pros\.example roster=both/, 'the privilege message');
      } else {
        assert.doesNotMatch(transport.output, /privileges granted/);
      }
      assert.match(prosody.output, /msn\.pros\.example:component\s+info\s+External component successfully authenticated/);
    });

    it('registers the Prosody user with MSN and brings the MSN contacts into the roster', async () => {
      const id = `reg${++iqs}`;
      const gatewayItem = privileged ? rosterPush(GW, 'both') : null;
      pat.send(
        `<iq type='set' to='${GW}' id='${id}'><query xmlns='jabber:iq:register'><username>alice@hotmail.com</username><password>alicepw</password></query></iq>`,
      );
      const r = await pat.waitStanza((s) => s.name === 'iq' && s.attrs.id === id, 'registration result', 30000);
      assert.equal(r.attrs.type, 'result');
      if (privileged) {
        // Written by the transport through Prosody's mod_privilege: no request to answer.
        await gatewayItem;
        const push = await rosterPush(BOB, 'both');
        const item = push.getChild('query', ROSTER)!.getChild('item')!;
        assert.equal(item.attrs.name, 'Bobby');
        assert.equal(item.getChildText('group'), 'Friends');
        await pat.waitStanza((s) => s.name === 'presence' && s.attrs.from === GW && !s.attrs.type, 'gateway online', 30000);
      } else {
        // The gateway asks to be a contact; the user accepts and asks back.
        await pat.waitStanza((s) => s.name === 'presence' && s.attrs.from === GW && s.attrs.type === 'subscribe', 'gateway request');
        pat.send(`<presence to='${GW}' type='subscribed'/>`);
        pat.send(`<presence to='${GW}' type='subscribe'/>`);
        await pat.waitStanza((s) => s.name === 'presence' && s.attrs.from === GW && !s.attrs.type, 'gateway online', 30000);
        // Contacts come as roster-subsync offers, which Prosody passes on.
        const offer = await pat.waitStanza(
          (s) => s.name === 'presence' && s.attrs.from === BOB && s.attrs.type === 'subscribe',
          'contact offer',
          30000,
        );
        const item = offer.getChild('x', SUBSYNC)?.getChild('item');
        assert.equal(item?.attrs.name, 'Bobby');
        assert.equal(item?.attrs.subscription, 'both');
        pat.send(`<presence to='${BOB}' type='subscribed'/>`);
        pat.send(`<presence to='${BOB}' type='subscribe'/>`);
        await rosterPush(BOB, 'both');
      }
    });

    it('carries presence both ways', async () => {
      const online = pat.waitStanza(
        (s) => s.name === 'presence' && s.attrs.from === BOB && s.getChildText('show') === 'away',
        'bob away at pat',
        20000,
      );
      await bob.setStatus('AWY');
      await online;
      const busy = nextEvent(bob, 'presence', (p) => p.email === 'alice@hotmail.com' && p.status === 'BSY', 20000);
      pat.send('<presence><show>dnd</show><status>working</status></presence>');
      await busy;
    });

    if (privileged) {
      it('stops a second transport with the wrong secret, with a clear message', async () => {
        // Its own storage: the running transport holds the first one.
        const config = join(dir, 'transport', 'wrong.yaml');
        writeFileSync(config, readFileSync(join(dir, 'transport', 'transport.yaml'), 'utf8').replace('/storage', '/storage-wrong'));
        const wrong = new PeerProcess(
          'jabberfly transport (wrong secret)',
          process.execPath,
          [JABBERFLY, 'transport', '--config', config, '--component', `127.0.0.1:${ports.component}`, '--secret', 'wrong', '--domain', GW],
          { env: { ...process.env, JABBERFLY_FROM_SOURCE: '1' } },
        );
        assert.equal(await wrong.waitExit(30000), 1);
        assert.match(wrong.output, /jabberfly: the server at 127\.0\.0\.1:\d+ refused the secret for msn\.pros\.example/);
        // The transport that has the right secret is still there.
        assert.equal(transport.running, true);
      });
    }

    it('carries messages both ways', async () => {
      const heard = nextEvent(bob, 'message', (m) => m.from === 'alice@hotmail.com' && m.text === 'hello from Prosody', 20000);
      pat.send(`<message to='${BOB}' type='chat'><body>hello from Prosody</body></message>`);
      await heard;
      const reply = pat.waitStanza(
        (s) => s.name === 'message' && s.attrs.from === BOB && s.getChildText('body') === 'hello from MSN',
        'reply at pat',
        20000,
      );
      await bob.sendMessage('alice@hotmail.com', 'hello from MSN');
      assert.equal((await reply).attrs.type, 'chat');
    });
  });
}

scenario(true);
scenario(false);

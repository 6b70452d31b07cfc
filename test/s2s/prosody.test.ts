// Federation interop with Debian's Prosody 0.12 (scripts/install-test-deps.sh
// installs it). Each scenario runs a private Prosody (test/helpers/prosody.ts:
// own config, data and certificates in a temp folder owned by the `prosody`
// user, started in the foreground as that user) next to a jabberfly,
// everything on 127.0.0.1.
//
// Loopback-only arrangement: jabberfly reaches Prosody through its static
// `s2s.routes` table. Prosody has no such table and always resolves
// `_xmpp-server._tcp.<domain>` SRV records, so the test runs a tiny DNS
// server on a 127.0.0.1 UDP port (fake-dns.ts) and points Prosody's resolver
// at it with `unbound = { forward = "127.0.0.1@PORT" }` (libunbound, which
// Debian's Prosody uses through lua-unbound). That DNS server answers
// `_xmpp-server._tcp.jf.example` with jabberfly's ephemeral s2s port and
// `jf-host.example` with 127.0.0.1, so no query or connection leaves loopback
// and nothing system-wide (/etc/hosts, resolv.conf) is touched.
//
// Scenarios: users on both servers subscribe to each other and chat both
// ways, (1) over Server Dialback with self-signed certificates, and (2) with
// certificates from a CA the test makes, trusted by both sides, with
// s2s.secureAuth / s2s_secure_auth, so SASL EXTERNAL authenticates.
import { generateSelfSigned } from '../../src/tls/certs.ts';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { S2SService } from '../../src/s2s/s2s-service.ts';
import { freePort, Prosody, prosodyConfig, prosodyIds } from '../helpers/prosody.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { bodyOf, idOf, query as mamQuery } from '../helpers/mam.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import { FakeDns } from './fake-dns.ts';

// Not under .test: libunbound answers that special-use zone itself (NXDOMAIN).
const PROSODY_DOMAIN = 'pros.example';
const JF_DOMAIN = 'jf.example';
const ROSTER = 'jabber:iq:roster';

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A self-signed certificate for `name` (dialback scenario). */
function selfSigned(dir: string, name: string): void {
  generateSelfSigned(join(dir, `${name}.crt`), join(dir, `${name}.key`), [name], 2);
}

/** A test CA, and certificates for each name signed by it (secure scenario). */
function caSigned(dir: string, names: string[]): string {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=jabberfly test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  for (const name of names) {
    openssl(
      [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        `/CN=${name}`,
        '-addext',
        `subjectAltName=DNS:${name}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
      ],
      dir,
    );
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '2',
        '-copy_extensions',
        'copy',
        '-out',
        `${name}.crt`,
      ],
      dir,
    );
  }
  return join(dir, 'ca.pem');
}

function isRosterPush(jid: string, subscription: string) {
  return (s: Stanza) =>
    s.is('iq') &&
    s.attrs.type === 'set' &&
    s.getChild('query', ROSTER)?.getChild('item')?.attrs.jid === jid &&
    s.getChild('query', ROSTER)?.getChild('item')?.attrs.subscription === subscription;
}

function scenario(secure: boolean): void {
  const title = secure
    ? 'federation with Prosody using CA-signed certificates (SASL EXTERNAL, secure auth)'
    : 'federation with Prosody over Server Dialback';
  describe(title, () => {
    let dir: string;
    let dns: FakeDns;
    let prosody: Prosody;
    let jf: TestServer;
    let jane: TestClient;
    let pat: SlixClient;

    before(async () => {
      const ids = prosodyIds();
      dir = mkdtempSync(join(tmpdir(), 'jabberfly-prosody-'));
      chmodSync(dir, 0o755);
      const certs = join(dir, 'certs');
      const jfRoot = join(dir, 'jabberfly');
      mkdirSync(certs);
      mkdirSync(join(dir, 'data'));
      mkdirSync(join(jfRoot, 'certs'), { recursive: true });
      let cafile: string | undefined;
      if (secure) {
        cafile = caSigned(certs, [PROSODY_DOMAIN, JF_DOMAIN]);
        // jabberfly finds jf.example.crt/.key in its tls.dir and uses them.
        for (const ext of ['crt', 'key']) {
          copyFileSync(join(certs, `${JF_DOMAIN}.${ext}`), join(jfRoot, 'certs', `${JF_DOMAIN}.${ext}`));
        }
      } else {
        selfSigned(certs, PROSODY_DOMAIN);
      }
      for (const entry of ['certs', 'data', ...readdirSync(certs).map((f) => join('certs', f))]) {
        chownSync(join(dir, entry), ids.uid, ids.gid);
      }
      chownSync(dir, ids.uid, ids.gid);

      const c2sPort = await freePort();
      const s2sPort = await freePort();
      jf = await startServer(
        {
          domain: JF_DOMAIN,
          s2s: {
            port: 0,
            connectTimeout: 10,
            secureAuth: secure,
            trustedCas: cafile ? [cafile] : [],
            routes: { [PROSODY_DOMAIN]: `127.0.0.1:${s2sPort}` },
          },
        },
        jfRoot,
      );
      const jfS2s = jf.server.service(S2SService)!;
      dns = await FakeDns.start({
        srv: {
          [`_xmpp-server._tcp.${JF_DOMAIN}`]: [
            { priority: 0, weight: 0, port: jfS2s.ports.starttls!, target: 'jf-host.example' },
          ],
        },
        a: { 'jf-host.example': '127.0.0.1' },
      });
      const configFile = join(dir, 'prosody.cfg.lua');
      writeFileSync(
        configFile,
        prosodyConfig({ domain: PROSODY_DOMAIN, dir, c2sPort, s2sPort, dnsPort: dns.port, secureAuth: secure, cafile }),
      );
      chownSync(configFile, ids.uid, ids.gid);
      prosody = new Prosody(configFile, ids, dir, PROSODY_DOMAIN);
      prosody.register('pat', 'pw');
      await prosody.start(s2sPort);

      await jf.addUser('jane', 'pw');
      jane = await connect({
        port: jf.port,
        domain: JF_DOMAIN,
        username: 'jane',
        password: 'pw',
        resource: 'jf',
      });
      await jane.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: ROSTER })));
      await jane.send(xml('presence'));
      pat = new SlixClient({ jid: `pat@${PROSODY_DOMAIN}/slix`, password: 'pw', port: c2sPort });
      await pat.started();
      pat.send(`<iq type='get' id='roster1'><query xmlns='${ROSTER}'/></iq>`);
      await pat.waitStanza((s) => s.name === 'iq' && s.attrs.id === 'roster1', 'roster result');
      pat.send('<presence/>');
    });

    after(async () => {
      if (process.env.S2S_DEBUG)
        writeFileSync(
          `${process.env.S2S_DEBUG}${secure ? '.secure' : ''}`,
          `${prosody?.output}\n-----\n${jf?.logs.join('\n')}`,
        );
      await pat?.stop();
      await jane?.stop();
      await prosody?.stop();
      await jf?.stop(false);
      await dns?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('subscribes both ways and ends with subscription both', async () => {
      await jane.send(xml('presence', { to: `pat@${PROSODY_DOMAIN}`, type: 'subscribe' }));
      const sub = await pat.waitStanza(
        (s) => s.name === 'presence' && s.attrs.type === 'subscribe',
        'subscribe at pat',
        20000,
      );
      assert.equal(sub.attrs.from, `jane@${JF_DOMAIN}`);
      pat.send(`<presence to='jane@${JF_DOMAIN}' type='subscribed'/>`);
      pat.send(`<presence to='jane@${JF_DOMAIN}' type='subscribe'/>`);
      await jane.waitFor(isRosterPush(`pat@${PROSODY_DOMAIN}`, 'to'), 'jane roster push to', 20000);
      const sub2 = await jane.waitFor(
        (s) => s.is('presence') && s.attrs.type === 'subscribe',
        'subscribe at jane',
        20000,
      );
      assert.equal(sub2.attrs.from, `pat@${PROSODY_DOMAIN}`);
      await jane.send(xml('presence', { to: `pat@${PROSODY_DOMAIN}`, type: 'subscribed' }));
      await jane.waitFor(isRosterPush(`pat@${PROSODY_DOMAIN}`, 'both'), 'jane roster push both', 20000);
      const push = await pat.waitStanza(
        (s) =>
          s.name === 'iq' &&
          s.attrs.type === 'set' &&
          s.getChild('query', ROSTER)?.getChild('item')?.attrs.subscription === 'both',
        'pat roster push both',
        20000,
      );
      assert.equal(push.getChild('query', ROSTER)?.getChild('item')?.attrs.jid, `jane@${JF_DOMAIN}`);
      // Presence flows once subscribed: each sees the other's resource online.
      const seen = await pat.waitStanza(
        (s) => s.name === 'presence' && s.attrs.from === `jane@${JF_DOMAIN}/jf` && !s.attrs.type,
        'jane online at pat',
        20000,
      );
      assert.ok(seen);
      await jane.waitFor(
        (s) => s.is('presence') && s.attrs.from === `pat@${PROSODY_DOMAIN}/slix` && !s.attrs.type,
        'pat online at jane',
        20000,
      );
    });

    it('exchanges chat messages both ways', async () => {
      await jane.send(
        xml(
          'message',
          { to: `pat@${PROSODY_DOMAIN}/slix`, type: 'chat' },
          xml('body', {}, 'hi from jabberfly'),
        ),
      );
      const m1 = await pat.waitStanza(
        (s) => s.name === 'message' && s.getChildText('body') === 'hi from jabberfly',
        'message at pat',
      );
      assert.equal(m1.attrs.from, `jane@${JF_DOMAIN}/jf`);
      pat.send(`<message to='jane@${JF_DOMAIN}' type='chat'><body>hi from prosody</body></message>`);
      const m2 = await jane.waitFor(
        (s) => s.is('message') && s.getChildText('body') === 'hi from prosody',
        'message at jane',
        10000,
      );
      assert.equal(m2.attrs.from, `pat@${PROSODY_DOMAIN}/slix`);
      // Both directions are in jane's archive (XEP-0313); the incoming one
      // carries jabberfly's stanza-id, which is its archive id.
      const sid = m2.getChild('stanza-id', 'urn:xmpp:sid:0');
      assert.equal(sid?.attrs.by, `jane@${JF_DOMAIN}`);
      const archived = await mamQuery(jane, { with: `pat@${PROSODY_DOMAIN}` });
      assert.deepEqual(archived.results.map(bodyOf), ['hi from jabberfly', 'hi from prosody']);
      assert.equal(idOf(archived.results[1]!), sid.attrs.id);
    });

    it(`authenticated both directions with ${secure ? 'SASL EXTERNAL' : 'dialback'}`, () => {
      const out = secure
        ? /outgoing s2s authenticated .*to=pros\.example method=EXTERNAL/
        : /outgoing s2s authenticated .*to=pros\.example method=dialback/;
      const inc = secure
        ? /incoming s2s authenticated from=pros\.example .*method=EXTERNAL/
        : /incoming s2s authenticated from=pros\.example .*method=dialback /;
      assert.ok(
        jf.logs.some((l) => out.test(l)),
        `jabberfly → prosody: ${jf.logs.filter((l) => /s2s/.test(l)).join('\n')}`,
      );
      assert.ok(
        jf.logs.some((l) => inc.test(l)),
        `prosody → jabberfly: ${jf.logs.filter((l) => /s2s/.test(l)).join('\n')}`,
      );
      // Prosody's own view of the same links.
      assert.match(prosody.output, /Outgoing s2s connection pros\.example->jf\.example complete/);
      assert.match(prosody.output, /Incoming s2s connection jf\.example->pros\.example complete/);
      if (secure) assert.match(prosody.output, /Accepting SASL EXTERNAL identity from jf\.example/);
      else assert.doesNotMatch(prosody.output, /Accepting SASL EXTERNAL identity/);
    });
  });
}

scenario(false);
scenario(true);

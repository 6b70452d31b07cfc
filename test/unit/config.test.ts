import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, ConfigError } from '../../src/config/load.ts';
import { SUPPORTED_PROTOCOLS } from '../../src/msnp/index.ts';

describe('configuration', () => {
  it('has working defaults', () => {
    const c = buildConfig({});
    assert.equal(c.domain, 'localhost');
    assert.equal(c.msn.domain, 'msn.localhost');
    assert.equal(c.muc.enabled, true);
    assert.equal(c.muc.domain, 'conference.localhost');
    assert.equal(c.c2s.port, 5222);
    assert.equal(c.c2s.directTlsPort, 5223);
    assert.equal(c.c2s.requireTls, true);
    assert.equal(c.s2s.port, 5269);
    assert.equal(c.http.port, 5280);
    assert.equal(c.registration.open, false);
    assert.equal(c.storage.path, './storage');
    assert.equal(c.tls.dir, './certs');
  });

  it('offers every MSNP version the client library speaks, best first, and takes a pinned list', () => {
    assert.deepEqual(
      buildConfig({}).msn.protocols.map((v) => `MSNP${v}`),
      SUPPORTED_PROTOCOLS,
    );
    assert.deepEqual(buildConfig({ msn: { protocols: [15] } }).msn.protocols, [15]);
  });

  it('reads components with their secrets and privileges (none unless granted)', () => {
    const c = buildConfig({
      components: {
        'IRC.localhost': { secret: 's' },
        'gw.localhost': { secret: 't', privileges: { roster: 'both', presence: 'roster' } },
      },
    });
    assert.equal(c.component.port, 5347);
    assert.deepEqual(c.component.listen, ['127.0.0.1']);
    assert.deepEqual(c.components['irc.localhost'], {
      secret: 's',
      privileges: { roster: 'none', message: 'none', presence: 'none' },
    });
    assert.deepEqual(c.components['gw.localhost']!.privileges, { roster: 'both', message: 'none', presence: 'roster' });
  });

  it('derives msn.domain and muc.domain from domain', () => {
    assert.equal(buildConfig({ domain: 'example.org' }).msn.domain, 'msn.example.org');
    assert.equal(buildConfig({ domain: 'example.org' }).muc.domain, 'conference.example.org');
    assert.equal(buildConfig({ muc: { domain: 'Rooms.Example.org' } }).muc.domain, 'rooms.example.org');
  });

  const bad: Array<[unknown, RegExp]> = [
    [{ domian: 'x' }, /unknown configuration key 'domian'/],
    [{ c2s: { prot: 5 } }, /unknown configuration key 'c2s\.prot'/],
    [{ c2s: { port: 70000 } }, /'c2s\.port' must be a port number/],
    [{ c2s: { port: 'x' } }, /'c2s\.port' must be a port number/],
    [{ c2s: { requireTls: 'yes' } }, /'c2s\.requireTls' must be a boolean/],
    [{ limits: { maxStanzaSize: -1 } }, /'limits\.maxStanzaSize' must be a positive number/],
    [{ listen: '0.0.0.0' }, /'listen' must be a list of strings/],
    [{ msn: { server: 'nohostport' } }, /'msn\.server' must be host:port/],
    [{ s2s: { routes: { a: 1 } } }, /'s2s\.routes' must be a map of strings/],
    [[1, 2], /must be a map of keys/],
    [{ muc: { domain: 'localhost' } }, /'muc\.domain' must differ/],
    [{ muc: { roomCreation: 'everyone' } }, /'muc\.roomCreation' must be 'local' or 'anyone'/],
    [{ muc: { maxOccupants: 0 } }, /'muc\.maxOccupants' must be a positive number/],
    [{ muc: { historyDefault: 500 } }, /'muc\.historyDefault' must be a whole number/],
    [{ components: { 'bad domain': { secret: 'x' } } }, /'components\.bad domain': not a valid domain name/],
    [{ components: { 'irc.localhost': {} } }, /'components\.irc\.localhost\.secret' must be a non-empty string/],
    [{ components: { 'irc.localhost': { secret: 'x', sekret: 'y' } } }, /unknown configuration key 'components\.irc\.localhost\.sekret'/],
    [{ components: { 'irc.localhost': { secret: 'x', privileges: { roster: 'all' } } } }, /privileges\.roster' must be one of none, get, set, both/],
    [{ components: { 'irc.localhost': { secret: 'x', privileges: { iq: 'both' } } } }, /unknown configuration key 'components\.irc\.localhost\.privileges\.iq'/],
    [{ components: { 'irc.localhost': { secret: 'x', privileges: { presence: 'roster' } } } }, /needs roster get or both/],
    [{ components: { localhost: { secret: 'x' } } }, /already served by this server/],
    [{ components: { 'conference.localhost': { secret: 'x' } } }, /already served by this server/],
    [{ component: { port: 'x' } }, /'component\.port' must be a port number/],
    [{ transport: { component: 'nohostport' } }, /'transport\.component' must be host:port/],
    [{ msn: { protocols: [19] } }, /'msn\.protocols': MSNP19 is not supported/],
    [{ msn: { protocols: [] } }, /'msn\.protocols' must be a non-empty list of whole numbers/],
    [{ msn: { protocols: ['MSNP15'] } }, /'msn\.protocols' must be a non-empty list of whole numbers/],
    [{ msn: { protocols: [15, 15] } }, /'msn\.protocols' lists a version twice/],
    [{ msn: { servicesUrl: 'ftp://x' } }, /'msn\.servicesUrl' must be an http\(s\) URL/],
    [{ msn: { loginWait: 0 } }, /'msn\.loginWait' must be a positive number/],
  ];
  for (const [given, message] of bad) {
    it(`refuses ${JSON.stringify(given)}`, () => {
      assert.throws(() => buildConfig(given), (e: unknown) => e instanceof ConfigError && message.test(e.message));
    });
  }
});

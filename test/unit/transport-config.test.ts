// `jabberfly transport`'s configuration: the file, then the flags on top;
// the users' domain derived from the transport's; clear errors for what
// the component mode cannot run without.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/load.ts';
import { transportConfig } from '../../src/transport/cli.ts';

describe('jabberfly transport configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-transport-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const msnOnly = file('msn.yaml', 'msn:\n  server: 127.0.0.1:1863\n');
  const flags = { component: '127.0.0.1:5347', secret: 's3cret', domain: 'msn.example.org' };

  it('takes the link from the flags and serves the users of the domain under the transport\'s', () => {
    const c = transportConfig(msnOnly, flags, {});
    assert.equal(c.msn.domain, 'msn.example.org');
    assert.equal(c.domain, 'example.org');
    assert.equal(c.transport.component, '127.0.0.1:5347');
    assert.equal(c.transport.secret, 's3cret');
    assert.equal(c.msn.enabled, true);
  });

  it('keeps the users\' domain the file names, and the flags win over the file', () => {
    const f = file(
      'full.yaml',
      'domain: users.example.net\nmsn:\n  domain: gw.example.net\n  server: 127.0.0.1:1863\ntransport:\n  component: 10.0.0.1:5347\n  secret: fromfile\n',
    );
    const c = transportConfig(f, { component: '127.0.0.1:5348' }, {});
    assert.equal(c.domain, 'users.example.net');
    assert.equal(c.msn.domain, 'gw.example.net');
    assert.equal(c.transport.component, '127.0.0.1:5348');
    assert.equal(c.transport.secret, 'fromfile');
  });

  it('reads the secret from $JABBERFLY_COMPONENT_SECRET (out of ps)', () => {
    const c = transportConfig(msnOnly, { ...flags, secret: undefined }, { JABBERFLY_COMPONENT_SECRET: 'from-env' });
    assert.equal(c.transport.secret, 'from-env');
  });

  const missing: Array<[string, object, string | null, RegExp]> = [
    ['the domain', { ...flags, domain: undefined }, msnOnly, /--domain msn\.example\.org/],
    ['the component port', { ...flags, component: undefined }, msnOnly, /--component HOST:PORT/],
    ['the secret', { ...flags, secret: undefined }, msnOnly, /--secret, \$JABBERFLY_COMPONENT_SECRET or transport\.secret/],
    ['the MSN server', flags, null, /set msn\.server/],
    ['a well-formed port', { ...flags, component: 'nohostport' }, msnOnly, /'transport\.component' must be host:port/],
  ];
  for (const [what, given, f, message] of missing) {
    it(`says so when ${what} is missing or wrong`, () => {
      assert.throws(() => transportConfig(f, given, {}), (e: unknown) => e instanceof ConfigError && message.test(e.message));
    });
  }
});

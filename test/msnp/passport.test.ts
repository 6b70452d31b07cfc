import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { MsnAuthError } from '../../src/msnp/errors.ts';
import { parsePassportParams, passportLogin, resolveLoginUrl } from '../../src/msnp/passport.ts';

test('parses Authentication-Info with a quoted from-PP ticket', () => {
  const p = parsePassportParams(
    "Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,from-PP='t=abc,def&p=xyz',ru=http://messenger.msn.com",
  );
  assert.equal(p.get('da-status'), 'success');
  assert.equal(p.get('from-PP'), 't=abc,def&p=xyz');
  assert.equal(p.get('ru'), 'http://messenger.msn.com');
});

test('DALogin without a scheme takes the nexus scheme', () => {
  assert.equal(
    resolveLoginUrl('login.passport.com/login2.srf', 'https://nexus.passport.com/rdr/pprdr.asp'),
    'https://login.passport.com/login2.srf',
  );
  assert.equal(
    resolveLoginUrl('http://127.0.0.1:5/login2.srf', 'https://x/'),
    'http://127.0.0.1:5/login2.srf',
  );
});

test('nexus → login2.srf → ticket, and 401 → MsnAuthError', async () => {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === '/rdr/pprdr.asp') {
      const { port } = server.address() as { port: number };
      res.writeHead(200, {
        PassportURLs: `DARealm=Passport.Net,DALogin=127.0.0.1:${port}/login2.srf,ConfigVersion=15`,
      });
      res.end();
      return;
    }
    const auth = req.headers.authorization ?? '';
    seen.push(auth);
    if (auth.includes('pwd=right')) {
      res.writeHead(200, { 'Authentication-Info': "Passport1.4 da-status=success,from-PP='t=T1&p=P1',ru=x" });
    } else {
      res.writeHead(401, { 'WWW-Authenticate': 'Passport1.4 da-status=failed,srealm=Passport.NET' });
    }
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  try {
    const base = {
      nexusUrl: `http://127.0.0.1:${port}/rdr/pprdr.asp`,
      email: 'a b@x.com',
      challenge: 'lc=1033,id=507',
      timeout: 2000,
    };
    assert.equal(await passportLogin({ ...base, password: 'right' }), 't=T1&p=P1');
    assert.equal(
      seen[0],
      'Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in=a%20b%40x.com,pwd=right,lc=1033,id=507',
    );
    await assert.rejects(passportLogin({ ...base, password: 'wrong' }), MsnAuthError);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

// The storage seam's contract on PostgreSQL (Debian's, started for the test
// run by test/helpers/postgres.ts), plus what only that backend has:
// versioned migrations, applied once however many nodes start together.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { MIGRATIONS } from '../../src/storage/pg-migrations.ts';
import { PgBackend } from '../../src/storage/pg.ts';
import { type TestDatabase, testDatabase } from '../helpers/postgres.ts';
import { storageSuite } from './suite.ts';

let db: TestDatabase;
let url: string;

before(async () => {
  db = await testDatabase();
  url = db.url;
});
after(async () => {
  await db.release();
});

storageSuite('PostgreSQL', {
  open: () => PgBackend.open(url),
  async reopen(b) {
    await b.close();
    return PgBackend.open(url);
  },
  async cleanup() {},
  atomic: true,
});

describe('PostgreSQL schema', () => {
  it('migrates a fresh database once, even when several nodes open it at the same moment', async () => {
    const fresh = await db.another();
    const backends = await Promise.all([1, 2, 3].map(() => PgBackend.open(fresh)));
    const c = new pg.Client({ connectionString: fresh });
    await c.connect();
    try {
      const { rows } = await c.query('SELECT version FROM jabberfly_migrations ORDER BY version');
      assert.deepEqual(
        rows.map((r) => r.version),
        MIGRATIONS.map((m) => m.version),
      );
      // A schema newer than this code is refused with a clear message.
      await c.query(`INSERT INTO jabberfly_migrations (version, name) VALUES (9999, 'from the future')`);
    } finally {
      await c.end();
    }
    await Promise.all(backends.map((b) => b.close()));
    await assert.rejects(PgBackend.open(fresh), /newer than this jabberfly knows/);
  });

  it('names the problem when the database cannot be reached', async () => {
    await assert.rejects(PgBackend.open(`postgres://postgres@127.0.0.1:${db.port}/no_such_database`), /cannot connect to PostgreSQL/);
  });
});

// Upload metadata on PostgreSQL: the `uploads` table, indexed by owner and
// by expiry (pg-migrations.ts), as the interface in types.ts describes.
import type { PgDb } from './pg.ts';
import type { UploadRecord, UploadRecordStore } from './types.ts';

interface Row {
  id: string;
  owner: string;
  filename: string;
  size: string;
  content_type: string;
  created: string;
  state: 'pending' | 'stored';
  expires: string | null;
}

const COLUMNS = 'id, owner, filename, size, content_type, created, state, expires';

function toRecord(r: Row): UploadRecord {
  return {
    id: r.id,
    owner: r.owner,
    filename: r.filename,
    size: Number(r.size),
    contentType: r.content_type,
    created: Number(r.created),
    state: r.state,
    expires: r.expires === null ? null : Number(r.expires),
  };
}

export class PgUploadRecords implements UploadRecordStore {
  constructor(private readonly db: PgDb) {}

  async get(id: string): Promise<UploadRecord | undefined> {
    const rows = await this.db.query<Row>(`SELECT ${COLUMNS} FROM uploads WHERE id = $1`, [id], 'upload-get');
    return rows[0] && toRecord(rows[0]);
  }

  async put(r: UploadRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO uploads (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, filename = EXCLUDED.filename, size = EXCLUDED.size,
         content_type = EXCLUDED.content_type, created = EXCLUDED.created, state = EXCLUDED.state, expires = EXCLUDED.expires`,
      [r.id, r.owner, r.filename, r.size, r.contentType, r.created, r.state, r.expires],
      'upload-put',
    );
  }

  async delete(id: string): Promise<void> {
    await this.db.query('DELETE FROM uploads WHERE id = $1', [id], 'upload-del');
  }

  async byOwner(owner: string): Promise<UploadRecord[]> {
    const rows = await this.db.query<Row>(`SELECT ${COLUMNS} FROM uploads WHERE owner = $1 ORDER BY id`, [owner], 'upload-owner');
    return rows.map(toRecord);
  }

  async expiring(time: number, limit: number): Promise<UploadRecord[]> {
    const rows = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM uploads WHERE expires IS NOT NULL AND expires < $1 ORDER BY expires, id LIMIT $2`,
      [time, limit],
      'upload-expiring',
    );
    return rows.map(toRecord);
  }
}

import { upsertRow, type Projection } from './projection.js';

/** rm_projects and rm_tokens. Tokens are stored by hash only; the API authenticates against rm_tokens. */
export const identityProjection: Projection = {
  name: 'identity',
  streamPrefixes: ['project-', 'token-'],
  tables: ['rm_tokens', 'rm_projects'],
  migrations: [
    {
      id: 'projections/identity/001',
      sql: `CREATE TABLE rm_projects (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        created_at timestamptz NOT NULL
      );
      CREATE TABLE rm_tokens (
        token_hash text PRIMARY KEY,
        token_id text NOT NULL UNIQUE,
        project_id uuid NOT NULL,
        role text NOT NULL,
        created_at timestamptz NOT NULL
      );`,
    },
  ],
  async apply(tx, event) {
    switch (event.type) {
      case 'ProjectCreated': {
        const p = event.data;
        await upsertRow(tx, 'rm_projects', { id: p.id, name: p.name, created_at: p.createdAt });
        return [{ kind: 'project', id: p.id, projectId: p.id }];
      }
      case 'TokenCreated': {
        const t = event.data;
        await upsertRow(
          tx,
          'rm_tokens',
          { token_hash: t.tokenHash, token_id: t.tokenId, project_id: t.projectId, role: t.role, created_at: t.createdAt },
          'token_hash',
        );
        return [{ kind: 'token', id: t.tokenId, projectId: t.projectId }];
      }
      default:
        return [];
    }
  },
};

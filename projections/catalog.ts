import { contractImageStatus } from '../domain/image.js';
import { applyImageLifecycle, imageMigrations } from './images.js';
import { upsertRow, type Projection } from './projection.js';

/** rm_flavors and rm_images. Each stream holds one creating event, so the row is the event's data. */
export const catalogProjection: Projection = {
  name: 'catalog',
  streamPrefixes: ['flavor-', 'image-'],
  tables: ['rm_flavors', 'rm_images'],
  migrations: [
    {
      id: 'projections/catalog/001',
      sql: `CREATE TABLE rm_flavors (
        id uuid PRIMARY KEY,
        name text NOT NULL UNIQUE,
        vcpus integer NOT NULL,
        memory_mb integer NOT NULL,
        disk_gb integer NOT NULL,
        created_at timestamptz NOT NULL
      );
      CREATE TABLE rm_images (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        format text NOT NULL,
        size_bytes bigint NOT NULL,
        checksum text,
        status text NOT NULL,
        registered_at timestamptz NOT NULL
      );`,
    },
    ...imageMigrations,
  ],
  async apply(tx, event) {
    switch (event.type) {
      case 'FlavorCreated': {
        const f = event.data;
        await upsertRow(tx, 'rm_flavors', {
          id: f.id,
          name: f.name,
          vcpus: f.vcpus,
          memory_mb: f.memoryMb,
          disk_gb: f.diskGb,
          created_at: f.createdAt,
        });
        return [{ kind: 'flavor', id: f.id, projectId: null }];
      }
      case 'ImageRegistered': {
        const i = event.data;
        await upsertRow(tx, 'rm_images', {
          id: i.id,
          name: i.name,
          format: i.format,
          size_bytes: i.sizeBytes,
          checksum: i.checksum ?? null,
          status: contractImageStatus(i.status),
          registered_at: i.registeredAt,
        });
        return [{ kind: 'image', id: i.id, projectId: null }];
      }
      default:
        return applyImageLifecycle(tx, event);
    }
  },
};

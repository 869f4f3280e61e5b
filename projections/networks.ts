import { networkEvents } from '../domain/network.js';
import type { Change, Projection } from './projection.js';

/**
 * rm_networks and rm_addresses: one row per network and one per address in use. A released address's
 * row goes (its history stays in the log); an address's project is who holds it, which for a floating
 * address differs from its network's (null: external).
 */
export const networksProjection: Projection = {
  name: 'networks',
  streamPrefixes: ['network-'],
  tables: ['rm_addresses', 'rm_networks'],
  migrations: [
    {
      id: 'projections/networks/001',
      sql: `CREATE TABLE rm_networks (
        id uuid PRIMARY KEY,
        project_id uuid,
        name text NOT NULL,
        cidr text NOT NULL,
        gateway text NOT NULL,
        external boolean NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL
      );
      CREATE INDEX rm_networks_project ON rm_networks (project_id, created_at);
      CREATE TABLE rm_addresses (
        id uuid PRIMARY KEY,
        network_id uuid NOT NULL REFERENCES rm_networks (id),
        project_id uuid NOT NULL,
        address text NOT NULL,
        kind text NOT NULL,
        instance_id uuid,
        fixed_address text,
        allocated_at timestamptz NOT NULL
      );
      CREATE INDEX rm_addresses_project ON rm_addresses (project_id, allocated_at);
      CREATE INDEX rm_addresses_instance ON rm_addresses (instance_id);
      CREATE INDEX rm_addresses_network ON rm_addresses (network_id);`,
    },
  ],
  async apply(tx, event) {
    if (!Object.hasOwn(networkEvents, event.type) || !event.streamId.startsWith('network-')) return [];
    const networkId = event.streamId.slice('network-'.length);
    const networkChange = async (): Promise<Change[]> => {
      const [row] = await tx.query<{ project_id: string | null }>('SELECT project_id FROM rm_networks WHERE id = $1', [networkId]);
      return [{ kind: 'network', id: networkId, projectId: row?.project_id ?? null }];
    };
    switch (event.type) {
      case 'NetworkCreated': {
        const d = event.data;
        await tx.query(
          `INSERT INTO rm_networks (id, project_id, name, cidr, gateway, external, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (id) DO NOTHING`,
          [networkId, d.projectId, d.name, d.cidr, d.gateway, d.external, d.at],
        );
        return networkChange();
      }
      case 'NetworkDeleted':
        await tx.query('UPDATE rm_networks SET deleted = true WHERE id = $1', [networkId]);
        return networkChange();
      case 'AddressAllocated': {
        const d = event.data;
        await tx.query(
          `INSERT INTO rm_addresses (id, network_id, project_id, address, kind, instance_id, allocated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (id) DO NOTHING`,
          [d.addressId, networkId, d.projectId, d.address, d.kind, d.instanceId, d.at],
        );
        return [{ kind: 'address', id: d.addressId, projectId: d.projectId }, ...(d.instanceId ? [{ kind: 'instance' as const, id: d.instanceId, projectId: d.projectId }] : [])];
      }
      case 'AddressReleased':
      case 'AddressAssociated':
      case 'AddressDisassociated': {
        const [before] = await tx.query<{ project_id: string; instance_id: string | null }>('SELECT project_id, instance_id FROM rm_addresses WHERE id = $1', [event.data.addressId]);
        if (!before) return [];
        if (event.type === 'AddressReleased') await tx.query('DELETE FROM rm_addresses WHERE id = $1', [event.data.addressId]);
        else if (event.type === 'AddressAssociated') {
          await tx.query('UPDATE rm_addresses SET instance_id = $2, fixed_address = $3 WHERE id = $1', [event.data.addressId, event.data.instanceId, event.data.fixedAddress]);
        } else await tx.query('UPDATE rm_addresses SET instance_id = NULL, fixed_address = NULL WHERE id = $1', [event.data.addressId]);
        const instanceId = event.type === 'AddressAssociated' ? event.data.instanceId : before.instance_id;
        return [
          { kind: 'address', id: event.data.addressId, projectId: before.project_id },
          ...(instanceId ? [{ kind: 'instance' as const, id: instanceId, projectId: before.project_id }] : []),
        ];
      }
      default:
        return [];
    }
  },
};

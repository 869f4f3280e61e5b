import { canRead, isAdmin, type Caller } from '../domain/identity.js';
import type { Address, AddressKind } from '../domain/network.js';
import type { Runtime } from '../server/runtime.js';

/**
 * The API's reads of rm_networks and rm_addresses. A project sees its own networks and the external
 * ones, and only the addresses it holds (a floating address on an external network is its holder's);
 * an admin sees everything.
 */

export interface NetworkShape {
  id: string;
  name: string;
  projectId: string | null;
  cidr: string;
  gateway: string;
  external: boolean;
}

interface NetworkRow {
  id: string;
  name: string;
  project_id: string | null;
  cidr: string;
  gateway: string;
  external: boolean;
}
const network = (r: NetworkRow): NetworkShape => ({ id: r.id, name: r.name, projectId: r.project_id, cidr: r.cidr, gateway: r.gateway, external: r.external });

interface AddressRow {
  id: string;
  network_id: string;
  project_id: string;
  address: string;
  kind: AddressKind;
  instance_id: string | null;
  fixed_address: string | null;
}
const address = (r: AddressRow): Address => ({
  id: r.id,
  networkId: r.network_id,
  projectId: r.project_id,
  address: r.address,
  kind: r.kind,
  instanceId: r.instance_id,
  fixedAddress: r.fixed_address,
});

const visible = (caller: Caller, projectId: string | null) => projectId === null || canRead(caller, projectId);

export async function networksOf(rt: Runtime, caller: Caller): Promise<NetworkShape[]> {
  const params: unknown[] = [];
  const scope = isAdmin(caller) ? 'TRUE' : `(project_id IS NULL OR project_id = $${params.push(caller.projectId)})`;
  const rows = await rt.db.query<NetworkRow>(`SELECT * FROM rm_networks WHERE NOT deleted AND ${scope} ORDER BY created_at, id`, params);
  return rows.map(network);
}

export async function networkById(rt: Runtime, caller: Caller, id: string): Promise<NetworkShape | null> {
  const [row] = await rt.db.query<NetworkRow>('SELECT * FROM rm_networks WHERE id = $1 AND NOT deleted', [id]);
  return row && visible(caller, row.project_id) ? network(row) : null;
}

export async function addressesOf(rt: Runtime, caller: Caller, filter: { networkId?: string; instanceId?: string } = {}): Promise<Address[]> {
  const params: unknown[] = [];
  const where = [isAdmin(caller) ? 'TRUE' : `project_id = $${params.push(caller.projectId)}`];
  if (filter.networkId) where.push(`network_id = $${params.push(filter.networkId)}`);
  if (filter.instanceId) where.push(`instance_id = $${params.push(filter.instanceId)}`);
  const rows = await rt.db.query<AddressRow>(`SELECT * FROM rm_addresses WHERE ${where.join(' AND ')} ORDER BY allocated_at, address, id`, params);
  return rows.map(address);
}

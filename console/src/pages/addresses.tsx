import { useState } from 'preact/hooks';
import { Dialog, ErrorNote, Loading, SelectField, unplacedError, useConfirm } from '../components';
import { useMutation, useQuery, useSubscription } from '../live';
import { href } from '../router';
import { can, useSession } from '../session';

interface AddressView {
  id: string;
  address: string;
  kind: 'FIXED' | 'FLOATING';
  networkId: string;
  fixedAddress: string | null;
  instance: { id: string; name: string } | null;
}
interface Data {
  addresses: AddressView[];
  networks: { id: string; name: string; cidr: string; external: boolean }[];
  instances: { edges: { node: { id: string; name: string; state: string } }[] };
}

/** Addresses (Neutron's floating IPs and fixed ports): allocate, associate, disassociate, release. */
export function AddressesPage() {
  const session = useSession();
  const data = useQuery<Data>(
    `query Addresses { addresses { id address kind networkId fixedAddress instance { id name } }
       networks { id name cidr external } instances(first: 500) { edges { node { id name state } } } }`,
  );
  // Each address (or network) change, once its projection has it, and the list reads itself again.
  useSubscription('subscription AddressesLive { resourceChanged(kinds: [ADDRESS, NETWORK]) { kind id } }', {}, () => data.reload());
  const act = useMutation();
  const { ask, dialog } = useConfirm();
  const [associating, setAssociating] = useState<AddressView | null>(null);
  const writer = can(session, 'allocateIp');
  const run = async (query: string, variables: Record<string, unknown>) => {
    const ok = (await act.run(query, variables)) !== null;
    if (ok) data.reload();
    return ok;
  };
  const ipInput = (a: AddressView) => ({ address: a.address, networkId: a.networkId });
  const allocate = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const input: Record<string, unknown> = { networkId: String(form.get('networkId') ?? ''), kind: String(form.get('kind') ?? 'FLOATING') };
    if (form.get('instanceId')) input.instanceId = String(form.get('instanceId'));
    await run('mutation AllocateIp($i: AllocateIpInput!) { allocateIp(input: $i) { operation { id } } }', { i: input });
  };
  const associate = async (e: Event) => {
    e.preventDefault();
    const instanceId = String(new FormData(e.currentTarget as HTMLFormElement).get('instanceId') ?? '');
    if (await run('mutation AssociateIp($i: AssociateIpInput!) { associateIp(input: $i) { operation { id } } }', { i: { ...ipInput(associating!), instanceId } })) setAssociating(null);
  };
  const disassociate = (a: AddressView) => run('mutation DisassociateIp($i: DisassociateIpInput!) { disassociateIp(input: $i) { operation { id } } }', { i: ipInput(a) });
  const release = (a: AddressView) => run('mutation ReleaseIp($i: ReleaseIpInput!) { releaseIp(input: $i) { operation { id } } }', { i: ipInput(a) });

  if (data.error) return <ErrorNote error={data.error} />;
  if (!data.data) return <Loading />;
  const { addresses, networks } = data.data;
  const instances = data.data.instances.edges.map((e) => e.node).filter((i) => i.state !== 'DELETED' && i.state !== 'ERROR');
  const networkName = (id: string) => networks.find((n) => n.id === id)?.name ?? id;
  const list = [...addresses].sort((a, b) => a.kind.localeCompare(b.kind) || a.address.localeCompare(b.address, undefined, { numeric: true }));
  return (
    <section aria-labelledby="addresses-title">
      <h1 id="addresses-title">Addresses</h1>
      <ErrorNote error={associating ? null : unplacedError(act.error, ['networkId', 'kind', 'instanceId'])} />
      <div class="table-wrap">
        <table aria-labelledby="addresses-title">
          <thead>
            <tr>
              <th scope="col">Address</th>
              <th scope="col">Kind</th>
              <th scope="col">Network</th>
              <th scope="col">Instance</th>
              <th scope="col">NAT to</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.length === 0 && (
              <tr>
                <td colSpan={6} class="muted">
                  No addresses yet.
                </td>
              </tr>
            )}
            {list.map((a) => (
              <tr key={a.id} data-address={a.address}>
                <th scope="row" class="mono">
                  {a.address}
                </th>
                <td>{a.kind.toLowerCase()}</td>
                <td>{networkName(a.networkId)}</td>
                <td>{a.instance ? <a href={href('instances', a.instance.id)}>{a.instance.name}</a> : <span class="muted">—</span>}</td>
                <td class="mono">{a.fixedAddress ?? '—'}</td>
                <td>
                  <span class="row-actions">
                  {writer && a.kind === 'FLOATING' && !a.instance && (
                    <button type="button" aria-label={`Associate ${a.address}`} onClick={() => (act.setError(null), setAssociating(a))}>
                      Associate…
                    </button>
                  )}
                  {writer && a.kind === 'FLOATING' && a.instance && (
                    <button
                      type="button"
                      aria-label={`Disassociate ${a.address}`}
                      onClick={() => ask('Disassociate', a.address, `${a.address} stops reaching ${a.instance!.name}; the address stays yours.`, () => void disassociate(a))}
                    >
                      Disassociate
                    </button>
                  )}
                  {writer && !a.instance && (
                    <button
                      type="button"
                      class="danger-text"
                      aria-label={`Release ${a.address}`}
                      onClick={() => ask('Release', a.address, 'The address goes back to its network; someone else may get it next.', () => void release(a))}
                    >
                      Release
                    </button>
                  )}
                  </span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {writer && (
        <form onSubmit={allocate} noValidate aria-labelledby="allocate-title" class="panel-form">
          <h2 id="allocate-title">Allocate an address</h2>
          <div class="form-grid">
            <div>
              <SelectField
                form="allocate"
                name="networkId"
                label="Network"
                error={act.error}
                options={[...networks].sort((a, b) => Number(b.external) - Number(a.external)).map((n) => ({ value: n.id, label: `${n.name} (${n.cidr}${n.external ? ', external' : ''})` }))}
              />
            </div>
            <div>
              <SelectField
                form="allocate"
                name="kind"
                label="Kind"
                error={act.error}
                options={[
                  { value: 'FLOATING', label: 'floating (from an external network)' },
                  { value: 'FIXED', label: 'fixed (on a project network)' },
                ]}
              />
            </div>
            <div>
              <SelectField form="allocate" name="instanceId" label="Instance (optional)" error={act.error} options={[{ value: '', label: 'none' }, ...instances.map((i) => ({ value: i.id, label: i.name }))]} />
            </div>
          </div>
          <div class="actions">
            <button type="submit" class="primary" disabled={act.busy || networks.length === 0}>
              Allocate
            </button>
          </div>
        </form>
      )}
      <Dialog title={`Associate ${associating?.address ?? ''}`} open={associating !== null} onClose={() => setAssociating(null)}>
        <form onSubmit={associate} noValidate>
          <SelectField form="associate" name="instanceId" label="Instance" error={act.error} options={instances.map((i) => ({ value: i.id, label: `${i.name} (${i.state.toLowerCase()})` }))} />
          <ErrorNote error={unplacedError(act.error, ['instanceId'])} />
          <div class="actions">
            <button type="button" onClick={() => setAssociating(null)}>
              Cancel
            </button>
            <button type="submit" class="primary" disabled={instances.length === 0 || act.busy}>
              Associate
            </button>
          </div>
        </form>
      </Dialog>
      {dialog}
    </section>
  );
}

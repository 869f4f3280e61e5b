import { ErrorNote, Field, Loading, unplacedError, useConfirm } from '../components';
import { useMutation, useQuery, useSubscription } from '../live';
import { can, useSession, type Session } from '../session';

interface NetworkView {
  id: string;
  name: string;
  cidr: string;
  gateway: string | null;
  external: boolean;
  projectId: string | null;
  addresses: { id: string }[];
}

const mayDelete = (s: Session, n: NetworkView) => can(s, 'deleteNetwork') && (s.role === 'ADMIN' || n.projectId === s.projectId);

function CreateNetwork({ onCreated }: { onCreated: () => void }) {
  const session = useSession();
  const create = useMutation();
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const input: Record<string, unknown> = { name: String(data.get('name') ?? ''), cidr: String(data.get('cidr') ?? '') };
    if (data.get('gateway')) input.gateway = String(data.get('gateway'));
    if (data.get('external')) input.external = true;
    if (await create.run('mutation CreateNetwork($input: CreateNetworkInput!) { createNetwork(input: $input) { network { id } } }', { input })) {
      form.reset();
      onCreated();
    }
  };
  return (
    <form onSubmit={submit} noValidate aria-labelledby="new-network-title" class="panel-form">
      <h2 id="new-network-title">New network</h2>
      <div class="form-grid">
        <div>
          <Field form="network" name="name" label="Name" error={create.error} placeholder="backend" />
        </div>
        <div>
          <Field form="network" name="cidr" label="CIDR" error={create.error} placeholder="10.20.0.0/24" />
        </div>
        <div>
          <Field form="network" name="gateway" label="Gateway (optional)" error={create.error} placeholder="first address" />
        </div>
        {session.role === 'ADMIN' && (
          <div class="check">
            <input id="network-external" name="external" type="checkbox" value="yes" />
            <label for="network-external">External (floating addresses come from it)</label>
          </div>
        )}
      </div>
      <ErrorNote error={unplacedError(create.error, ['name', 'cidr', 'gateway', 'external'])} />
      <div class="actions">
        <button type="submit" class="primary" disabled={create.busy}>
          Create network
        </button>
      </div>
    </form>
  );
}

/** Networks the caller may use: its project's and the external ones. Create and delete. */
export function NetworksPage() {
  const session = useSession();
  const networks = useQuery<{ networks: NetworkView[] }>('query Networks { networks { id name cidr gateway external projectId addresses { id } } }');
  // A network made or deleted, or an address taken or given back (its use), and the list reads itself again.
  useSubscription('subscription NetworksLive { resourceChanged(kinds: [NETWORK, ADDRESS]) { kind id } }', {}, () => networks.reload());
  const remove = useMutation();
  const { ask, dialog } = useConfirm();
  const del = async (n: NetworkView) => {
    if (await remove.run('mutation DeleteNetwork($id: ID!) { deleteNetwork(input: {id: $id}) { network { id } } }', { id: n.id })) networks.reload();
  };
  const list = [...(networks.data?.networks ?? [])].sort((a, b) => Number(a.external) - Number(b.external) || a.name.localeCompare(b.name));
  return (
    <section aria-labelledby="networks-title">
      <h1 id="networks-title">Networks</h1>
      <ErrorNote error={networks.error ?? remove.error} />
      {!networks.data ? (
        <Loading />
      ) : (
        <div class="table-wrap">
          <table aria-labelledby="networks-title">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">CIDR</th>
                <th scope="col">Gateway</th>
                <th scope="col">Kind</th>
                <th scope="col">Addresses in use</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.length === 0 && (
                <tr>
                  <td colSpan={6} class="muted">
                    No networks yet: an instance booted without one gets the project's default network.
                  </td>
                </tr>
              )}
              {list.map((n) => (
                <tr key={n.id} data-network-name={n.name}>
                  <th scope="row">{n.name}</th>
                  <td class="mono">{n.cidr}</td>
                  <td class="mono">{n.gateway ?? '—'}</td>
                  <td>{n.external ? 'external' : 'project'}</td>
                  <td>{n.addresses.length}</td>
                  <td>
                    {mayDelete(session, n) && (
                      <button
                        type="button"
                        class="danger-text"
                        aria-label={`Delete ${n.name}`}
                        onClick={() => ask('Delete', n.name, `The network ${n.cidr} is removed. A network with addresses in use cannot be deleted.`, () => void del(n))}
                      >
                        Delete
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {can(session, 'createNetwork') && <CreateNetwork onCreated={networks.reload} />}
      {dialog}
    </section>
  );
}

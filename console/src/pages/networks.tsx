import { ErrorNote, Loading } from '../components';
import { useQuery, useSubscription } from '../live';

interface NetworkView {
  id: string;
  name: string;
  cidr: string;
  gateway: string | null;
}

/** The networks the caller may use, read again on every event of a network stream. */
export function NetworksPage() {
  const networks = useQuery<{ networks: NetworkView[] }>('query Networks { networks { id name cidr gateway } }');
  useSubscription('subscription NetworksLive { events(streamPrefix: "network-") { id } }', {}, () => networks.reload());
  return (
    <section aria-labelledby="networks-title">
      <h1 id="networks-title">Networks</h1>
      <ErrorNote error={networks.error} />
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
              </tr>
            </thead>
            <tbody>
              {networks.data.networks.length === 0 && (
                <tr>
                  <td colSpan={3} class="muted">
                    No networks yet: an instance booted without one gets the project's default network.
                  </td>
                </tr>
              )}
              {networks.data.networks.map((n) => (
                <tr key={n.id}>
                  <th scope="row">{n.name}</th>
                  <td class="mono">{n.cidr}</td>
                  <td class="mono">{n.gateway ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

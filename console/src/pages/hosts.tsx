import { useState } from 'preact/hooks';
import { ApiError, request } from '../api';
import { Badge, Bar, Confirm, ErrorNote, Loading } from '../components';
import { gigabytes, memory } from '../format';
import { useQuery, useSubscription } from '../live';
import { can, useSession } from '../session';

interface Resources {
  vcpus: number;
  memoryMb: number;
  diskGb: number;
}
interface HostView {
  id: string;
  name: string;
  address: string;
  port: number;
  state: string;
  hypervisor: string;
  capacity: Resources;
  allocated: Resources;
  instances: { id: string }[];
}

/** What entering maintenance does (setHostState MAINTENANCE starts a DRAIN_HOST operation), said before it is done. */
const DRAIN_WARNING =
  'Every instance on it is migrated to another host (live if it runs, cold if it is stopped) by a DRAIN_HOST operation, and no new instance is placed on it until it leaves maintenance. One that cannot move (no room elsewhere, or paused or suspended) stays where it is, and the operation names it.';

/** Hosts, read again after each change of one (a claim, a release, a state change). */
export function HostsPage() {
  const session = useSession();
  const hosts = useQuery<{ hosts: HostView[] }>('query Hosts { hosts { id name address port state hypervisor capacity { vcpus memoryMb diskGb } allocated { vcpus memoryMb diskGb } instances { id } } }');
  useSubscription('subscription HostsLive { hostChanged { id } }', {}, () => hosts.reload());
  const [pending, setPending] = useState<HostView | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const setState = async (host: HostView, state: 'UP' | 'MAINTENANCE') => {
    setPending(null);
    try {
      await request(session.token, 'mutation SetHostState($id: ID!, $state: HostState!) { setHostState(input: {id: $id, state: $state}) { host { id state } } }', { id: host.id, state });
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL'));
    }
    hosts.reload();
  };
  const mayToggle = can(session, 'setHostState', 'admin');

  return (
    <section aria-labelledby="hosts-title">
      <header class="page-head">
        <h1 id="hosts-title">Hosts</h1>
      </header>
      <ErrorNote error={hosts.error ?? error} />
      {!hosts.data ? (
        <Loading />
      ) : (
        <ul class="cards">
          {hosts.data.hosts.map((h) => (
            <li class="card" key={h.id} aria-labelledby={`host-${h.id}`}>
              <header class="card-head">
                <h2 id={`host-${h.id}`}>{h.name}</h2>
                <Badge value={h.state} />
              </header>
              <p class="muted host-meta">
                <span class="mono">
                  {h.address}:{h.port}
                </span>{' '}
                · {h.hypervisor} · {h.instances.length} instance{h.instances.length === 1 ? '' : 's'}
              </p>
              <Bar label="vCPU" used={h.allocated.vcpus} total={h.capacity.vcpus} />
              <Bar label="Memory" used={h.allocated.memoryMb} total={h.capacity.memoryMb} format={memory} />
              <Bar label="Disk" used={h.allocated.diskGb} total={h.capacity.diskGb} format={gigabytes} />
              {mayToggle && h.state !== 'DOWN' && (
                <div class="actions">
                  {h.state === 'UP' ? (
                    <button type="button" onClick={() => setPending(h)}>
                      Enter maintenance
                    </button>
                  ) : (
                    <button type="button" onClick={() => void setState(h, 'UP')}>
                      Leave maintenance
                    </button>
                  )}
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
      <Confirm
        action={pending ? 'Enter maintenance on' : null}
        subject={pending?.name ?? ''}
        detail={DRAIN_WARNING}
        onCancel={() => setPending(null)}
        onConfirm={() => pending && void setState(pending, 'MAINTENANCE')}
      />
    </section>
  );
}

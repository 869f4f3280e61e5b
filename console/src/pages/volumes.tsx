import { Badge, ErrorNote, Loading } from '../components';
import { useQuery, useSubscription } from '../live';

interface VolumeView {
  id: string;
  name: string;
  sizeGb: number;
  state: string;
  device: string | null;
  attachedTo: { id: string; name: string } | null;
}

/** The project's volumes, read again on every event of a volume stream. */
export function VolumesPage() {
  const volumes = useQuery<{ volumes: VolumeView[] }>('query Volumes { volumes { id name sizeGb state device attachedTo { id name } } }');
  useSubscription('subscription VolumesLive { events(streamPrefix: "volume-") { id } }', {}, () => volumes.reload());
  return (
    <section aria-labelledby="volumes-title">
      <h1 id="volumes-title">Volumes</h1>
      <ErrorNote error={volumes.error} />
      {!volumes.data ? (
        <Loading />
      ) : (
        <div class="table-wrap">
          <table aria-labelledby="volumes-title">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">Size</th>
                <th scope="col">Attached to</th>
                <th scope="col">Device</th>
              </tr>
            </thead>
            <tbody>
              {volumes.data.volumes.length === 0 && (
                <tr>
                  <td colSpan={5} class="muted">
                    No volumes yet.
                  </td>
                </tr>
              )}
              {volumes.data.volumes.map((v) => (
                <tr key={v.id}>
                  <th scope="row">{v.name}</th>
                  <td>
                    <Badge value={v.state} />
                  </td>
                  <td>{v.sizeGb} GB</td>
                  <td>{v.attachedTo ? <a href={`#/instances/${encodeURIComponent(v.attachedTo.id)}`}>{v.attachedTo.name}</a> : <span class="muted">—</span>}</td>
                  <td class="mono">{v.device ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

import { useState } from 'preact/hooks';
import { request } from '../api';
import { Badge, Dialog, ErrorNote, Field, Loading, MenuButton, SelectField, unplacedError, useConfirm } from '../components';
import { dateTime } from '../format';
import { useLiveRows, useMutation, useQuery } from '../live';
import { href } from '../router';
import { can, useSession } from '../session';

interface SnapshotView {
  id: string;
  name: string;
  volumeId: string;
  sizeGb: number;
  state: string;
  createdAt: string;
}
interface VolumeView {
  id: string;
  name: string;
  sizeGb: number;
  state: string;
  task: string | null;
  version: number;
  device: string | null;
  errorReason: string | null;
  createdAt: string;
  attachedTo: { id: string; name: string } | null;
  snapshots: SnapshotView[];
}

const VOLUME = 'id name sizeGb state task version device errorReason createdAt attachedTo { id name } snapshots { id name volumeId sizeGb state createdAt }';

/** Which actions a volume's state allows now (Cinder's status checks, as the API applies them). */
const actionsFor = (v: VolumeView) =>
  v.task
    ? []
    : [
        ...(v.state === 'AVAILABLE' ? (['attach', 'snapshot'] as const) : []),
        ...(v.state === 'IN_USE' ? (['detach'] as const) : []),
        ...(v.state === 'AVAILABLE' || v.state === 'ERROR' ? (['delete'] as const) : []),
      ];

function CreateVolume({ snapshots, onCreated }: { snapshots: SnapshotView[]; onCreated: (v: VolumeView) => void }) {
  const create = useMutation();
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const input: Record<string, unknown> = { name: String(data.get('name') ?? ''), sizeGb: Number(data.get('sizeGb')) };
    if (data.get('snapshotId')) input.snapshotId = String(data.get('snapshotId'));
    const r = await create.run<{ createVolume: { volume: VolumeView | null } }>(
      `mutation CreateVolume($input: CreateVolumeInput!) { createVolume(input: $input) { operation { id } volume { ${VOLUME} } } }`,
      { input },
    );
    if (r) {
      form.reset();
      if (r.createVolume.volume) onCreated(r.createVolume.volume);
    }
  };
  const usable = snapshots.filter((s) => s.state === 'AVAILABLE');
  return (
    <form onSubmit={submit} noValidate aria-labelledby="new-volume-title" class="panel-form">
      <h2 id="new-volume-title">New volume</h2>
      <div class="form-grid">
        <div>
          <Field form="volume" name="name" label="Name" error={create.error} placeholder="data-1" />
        </div>
        <div>
          <Field form="volume" name="sizeGb" label="Size (GB)" error={create.error} type="number" inputMode="numeric" min={1} defaultValue="1" />
        </div>
        {usable.length > 0 && (
          <div>
            <SelectField
              form="volume"
              name="snapshotId"
              label="From snapshot"
              error={create.error}
              options={[{ value: '', label: 'none (empty volume)' }, ...usable.map((s) => ({ value: s.id, label: `${s.name} (${s.sizeGb} GB)` }))]}
            />
          </div>
        )}
      </div>
      <ErrorNote error={unplacedError(create.error, ['name', 'sizeGb', 'snapshotId'])} />
      <div class="actions">
        <button type="submit" class="primary" disabled={create.busy}>
          Create volume
        </button>
      </div>
    </form>
  );
}

/** Volumes (Cinder): create, attach, detach, snapshot and delete, each volume's state live (volumeChanged). */
export function VolumesPage() {
  const session = useSession();
  const act = useMutation();
  const { ask, dialog } = useConfirm();
  const [attaching, setAttaching] = useState<VolumeView | null>(null);
  const [snapshotting, setSnapshotting] = useState<VolumeView | null>(null);
  const { rows, error, merge } = useLiveRows<VolumeView>(
    async () => (await request<{ volumes: VolumeView[] }>(session.token, `query Volumes { volumes { ${VOLUME} } }`)).volumes,
    { query: `subscription VolumesLive { volumeChanged { ${VOLUME} } }`, pick: (d: { volumeChanged: VolumeView }) => d.volumeChanged },
  );
  const instances = useQuery<{ instances: { edges: { node: { id: string; name: string; state: string } }[] } }>(
    'query VolumeTargets { instances(first: 500) { edges { node { id name state } } } }',
  );
  const writer = can(session, 'createVolume');
  const shown = (rows ?? []).filter((v) => v.state !== 'DELETED').sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  const snapshots = shown.flatMap((v) => v.snapshots.filter((s) => s.state !== 'DELETED'));
  const nameOf = (id: string) => shown.find((v) => v.id === id)?.name ?? id;
  const run = async (query: string, variables: Record<string, unknown>) => {
    const r = await act.run<Record<string, { volume: VolumeView | null }>>(query, variables);
    const volume = r && Object.values(r)[0]?.volume;
    if (volume) merge([volume]);
    return r !== null;
  };
  const detach = (v: VolumeView) =>
    run(`mutation DetachVolume($i: DetachVolumeInput!) { detachVolume(input: $i) { operation { id } volume { ${VOLUME} } } }`, { i: { instanceId: v.attachedTo!.id, volumeId: v.id } });
  const remove = (v: VolumeView) => run(`mutation DeleteVolume($id: ID!) { deleteVolume(input: {id: $id}) { operation { id } volume { ${VOLUME} } } }`, { id: v.id });
  const attach = async (e: Event) => {
    e.preventDefault();
    const instanceId = String(new FormData(e.currentTarget as HTMLFormElement).get('instanceId') ?? '');
    if (await run(`mutation AttachVolume($i: AttachVolumeInput!) { attachVolume(input: $i) { operation { id } volume { ${VOLUME} } } }`, { i: { instanceId, volumeId: attaching!.id } }))
      setAttaching(null);
  };
  const snapshot = async (e: Event) => {
    e.preventDefault();
    const name = String(new FormData(e.currentTarget as HTMLFormElement).get('name') ?? '');
    if (await run(`mutation SnapshotVolume($i: SnapshotVolumeInput!) { snapshotVolume(input: $i) { operation { id } volume { ${VOLUME} } } }`, { i: { volumeId: snapshotting!.id, name } }))
      setSnapshotting(null);
  };
  const targets = (instances.data?.instances.edges ?? []).map((e) => e.node).filter((i) => i.state !== 'DELETED' && i.state !== 'ERROR');

  return (
    <section aria-labelledby="volumes-title">
      <h1 id="volumes-title">Volumes</h1>
      <ErrorNote error={error ?? (attaching || snapshotting ? null : act.error)} />
      {!rows ? (
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
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {shown.length === 0 && (
                <tr>
                  <td colSpan={7} class="muted">
                    No volumes yet.
                  </td>
                </tr>
              )}
              {shown.map((v) => {
                const actions = writer ? actionsFor(v) : [];
                return (
                  <tr key={v.id} data-volume-id={v.id} data-volume-name={v.name}>
                    <th scope="row">{v.name}</th>
                    <td class="status">
                      <span class="badges">
                        <Badge value={v.state} />
                        {v.task && <Badge value={v.task} />}
                        {v.errorReason && <span class="error-inline">{v.errorReason}</span>}
                      </span>
                    </td>
                    <td>{v.sizeGb} GB</td>
                    <td>{v.attachedTo ? <a href={href('instances', v.attachedTo.id)}>{v.attachedTo.name}</a> : <span class="muted">—</span>}</td>
                    <td class="mono">{v.device ?? '—'}</td>
                    <td>{dateTime(v.createdAt)}</td>
                    <td>
                      {actions.length > 0 && (
                        <MenuButton
                          label={`Actions for ${v.name}`}
                          text="Actions"
                          items={actions.map((a) =>
                            a === 'attach'
                              ? { key: a, label: 'Attach…', run: () => (act.setError(null), setAttaching(v)) }
                              : a === 'snapshot'
                                ? { key: a, label: 'Snapshot…', run: () => (act.setError(null), setSnapshotting(v)) }
                                : a === 'detach'
                                  ? {
                                      key: a,
                                      label: 'Detach',
                                      danger: true,
                                      run: () => ask('Detach', v.name, `The disk is unplugged from ${v.attachedTo?.name ?? 'its instance'}; anything the guest has not flushed is lost.`, () => void detach(v)),
                                    }
                                  : { key: a, label: 'Delete', danger: true, run: () => ask('Delete', v.name, 'The volume and its data are destroyed. This cannot be undone.', () => void remove(v)) },
                          )}
                        />
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <section aria-labelledby="snapshots-title">
        <h2 id="snapshots-title">Snapshots</h2>
        <div class="table-wrap">
          <table aria-labelledby="snapshots-title" class="compact">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Volume</th>
                <th scope="col">State</th>
                <th scope="col">Size</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {snapshots.length === 0 && (
                <tr>
                  <td colSpan={5} class="muted">
                    No snapshots yet.
                  </td>
                </tr>
              )}
              {snapshots.map((s) => (
                <tr key={s.id} data-snapshot-name={s.name}>
                  <th scope="row">{s.name}</th>
                  <td>{nameOf(s.volumeId)}</td>
                  <td>
                    <Badge value={s.state} />
                  </td>
                  <td>{s.sizeGb} GB</td>
                  <td>{dateTime(s.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      {writer && <CreateVolume snapshots={snapshots} onCreated={(v) => merge([v])} />}
      <Dialog title={`Attach ${attaching?.name ?? ''}`} open={attaching !== null} onClose={() => setAttaching(null)}>
        <form onSubmit={attach} noValidate>
          <SelectField form="attach" name="instanceId" label="Instance" error={act.error} options={targets.map((i) => ({ value: i.id, label: `${i.name} (${i.state.toLowerCase()})` }))} />
          <ErrorNote error={unplacedError(act.error, ['instanceId'])} />
          <div class="actions">
            <button type="button" onClick={() => setAttaching(null)}>
              Cancel
            </button>
            <button type="submit" class="primary" disabled={targets.length === 0 || act.busy}>
              Attach
            </button>
          </div>
        </form>
      </Dialog>
      <Dialog title={`Snapshot ${snapshotting?.name ?? ''}`} open={snapshotting !== null} onClose={() => setSnapshotting(null)}>
        <form onSubmit={snapshot} noValidate>
          <Field form="snapshot" name="name" label="Snapshot name" error={act.error} autofocus />
          <ErrorNote error={unplacedError(act.error, ['name'])} />
          <div class="actions">
            <button type="button" onClick={() => setSnapshotting(null)}>
              Cancel
            </button>
            <button type="submit" class="primary" disabled={act.busy}>
              Take snapshot
            </button>
          </div>
        </form>
      </Dialog>
      {dialog}
    </section>
  );
}

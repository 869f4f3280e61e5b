import { Dialog, ErrorNote, Field, SelectField, unplacedError } from '../components';
import { memory } from '../format';
import { useMutation, useQuery } from '../live';

interface Target {
  id: string;
  name: string;
  flavor: { name: string };
}

/** What snapshotInstance's payload names: the image the snapshot becomes (QUEUED until the operation ends). */
export interface SnapshotImage {
  id: string;
  name: string;
  status: string;
}

/** Pick another flavor; the API decides whether it fits, and says so next to the field. */
export function ResizeDialog({ instance, onClose }: { instance: Target | null; onClose: () => void }) {
  const flavors = useQuery<{ flavors: { id: string; name: string; vcpus: number; memoryMb: number; diskGb: number }[] }>(
    'query ResizeChoices { flavors { id name vcpus memoryMb diskGb } }',
    {},
    [instance?.id],
  );
  const resize = useMutation();
  const close = () => (resize.setError(null), onClose());
  const submit = async (e: Event) => {
    e.preventDefault();
    const flavorId = String(new FormData(e.currentTarget as HTMLFormElement).get('flavorId') ?? '');
    const r = await resize.run(`mutation Resize($i: ResizeInstanceInput!) { resizeInstance(input: $i) { operation { id kind status } } }`, { i: { id: instance!.id, flavorId } });
    if (r) onClose();
  };
  const list = flavors.data?.flavors ?? [];
  const current = instance?.flavor.name;
  // The first flavor other than the current one is the likely choice; the current one stays listed, marked.
  const ordered = [...list.filter((f) => f.name !== current), ...list.filter((f) => f.name === current)];
  // The API names flavorId in its issue when the flavor does not fit (the one the instance has, a disk
  // smaller than its image's or its own).
  const error = resize.error;
  return (
    <Dialog title={`Resize ${instance?.name ?? ''}`} open={instance !== null} onClose={close}>
      <form onSubmit={submit} noValidate>
        <p class="muted">
          Now {current}. A running instance is stopped while it is resized and started again; its disk grows but never shrinks.
        </p>
        <SelectField
          form="resize"
          name="flavorId"
          label="New flavor"
          error={error}
          options={ordered.map((f) => ({
            value: f.id,
            label: `${f.name} — ${f.vcpus} vCPU, ${memory(f.memoryMb)}, ${f.diskGb} GB${f.name === current ? ' (current)' : ''}`,
          }))}
        />
        <ErrorNote error={unplacedError(error, ['flavorId']) ?? flavors.error} />
        <div class="actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={resize.busy || list.length === 0}>
            Resize
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** Name the image a snapshot of the instance becomes; the API's rules for the name show next to it. */
export function SnapshotDialog({ instance, onClose, onTaken }: { instance: Target | null; onClose: () => void; onTaken: (image: SnapshotImage) => void }) {
  const snapshot = useMutation();
  const close = () => (snapshot.setError(null), onClose());
  const submit = async (e: Event) => {
    e.preventDefault();
    const imageName = String(new FormData(e.currentTarget as HTMLFormElement).get('imageName') ?? '');
    const r = await snapshot.run<{ snapshotInstance: { image: SnapshotImage | null } }>(
      `mutation Snapshot($i: SnapshotInstanceInput!) { snapshotInstance(input: $i) { operation { id kind status } image { id name status } } }`,
      { i: { id: instance!.id, imageName } },
    );
    if (!r) return;
    if (r.snapshotInstance.image) onTaken(r.snapshotInstance.image);
    onClose();
  };
  return (
    <Dialog title={`Snapshot ${instance?.name ?? ''}`} open={instance !== null} onClose={close}>
      <form onSubmit={submit} noValidate>
        <p class="muted">The disk becomes a private image of the project, which boots like any other.</p>
        <Field form="snapshot" name="imageName" label="Image name" error={snapshot.error} placeholder={`${instance?.name ?? 'web-1'}-snap`} autofocus />
        <ErrorNote error={unplacedError(snapshot.error, ['imageName'])} />
        <div class="actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={snapshot.busy}>
            Take snapshot
          </button>
        </div>
      </form>
    </Dialog>
  );
}

import { useState } from 'preact/hooks';
import { ApiError, request } from '../api';
import { Dialog, ErrorNote } from '../components';
import { useQuery } from '../live';
import { useSession } from '../session';
import { INSTANCE_ROW, type InstanceRow } from './instanceRow';

interface Choices {
  flavors: { id: string; name: string; vcpus: number; memoryMb: number; diskGb: number }[];
  images: { id: string; name: string; status: string }[];
  networks?: { id: string; name: string; cidr: string; external: boolean }[];
}

const FIELDS = ['name', 'flavorId', 'imageId', 'networkId'] as const;

/**
 * The boot form. It checks nothing itself: the API's zod issues come back in `extensions.issues` and
 * each is shown next to the field its path names, so the rules live in one place.
 */
export function BootDialog({ open, onClose, onBooted }: { open: boolean; onClose: () => void; onBooted: (instance: InstanceRow) => void }) {
  const session = useSession();
  const withNetworks = session.queries.has('networks');
  const choices = useQuery<Choices>(
    `query BootChoices { flavors { id name vcpus memoryMb diskGb } images { id name status } ${withNetworks ? 'networks { id name cidr external }' : ''} }`,
    {},
    [open],
  );
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const input: Record<string, string> = {};
    for (const f of FIELDS) {
      const v = form.get(f);
      if (typeof v === 'string' && v !== '') input[f] = v;
    }
    setBusy(true);
    try {
      const r = await request<{ bootInstance: { instance: InstanceRow } }>(
        session.token,
        `mutation Boot($input: BootInstanceInput!) { bootInstance(input: $input) { operation { id } instance { ${INSTANCE_ROW} } } }`,
        { input: { name: input.name ?? '', flavorId: input.flavorId ?? '', imageId: input.imageId ?? '', networkId: input.networkId ?? null } },
      );
      setError(null);
      onBooted(r.bootInstance.instance);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err), 'INTERNAL'));
    } finally {
      setBusy(false);
    }
  };

  const fieldError = (f: string) => error?.issueFor(f);
  const unplaced = error && FIELDS.every((f) => !fieldError(f)) ? error : null;
  const described = (f: string) => (fieldError(f) ? { 'aria-invalid': true, 'aria-describedby': `boot-${f}-error` } : {});
  const note = (f: string) =>
    fieldError(f) ? (
      <span id={`boot-${f}-error`} class="field-error">
        {fieldError(f)}
      </span>
    ) : null;
  // Only an ACTIVE image has its bytes (QUEUED and SAVING ones are still uploading, ERROR ones never will).
  const images = (choices.data?.images ?? []).filter((i) => i.status === 'ACTIVE');
  // An instance plugs into a project network; external ones give floating addresses, not ports.
  const networks = (choices.data?.networks ?? []).filter((n) => !n.external);

  return (
    <Dialog title="Boot an instance" open={open} onClose={() => (setError(null), onClose())}>
      <form onSubmit={submit} noValidate>
        <label for="boot-name">Name</label>
        <input id="boot-name" name="name" autocomplete="off" placeholder="web-1" {...described('name')} />
        {note('name')}

        <label for="boot-flavorId">Flavor</label>
        <select id="boot-flavorId" name="flavorId" {...described('flavorId')}>
          {choices.data?.flavors.map((f) => (
            <option value={f.id} key={f.id}>
              {f.name} — {f.vcpus} vCPU, {f.memoryMb} MB, {f.diskGb} GB
            </option>
          ))}
        </select>
        {note('flavorId')}

        <label for="boot-imageId">Image</label>
        <select id="boot-imageId" name="imageId" {...described('imageId')}>
          {images.map((i) => (
            <option value={i.id} key={i.id}>
              {i.name}
            </option>
          ))}
        </select>
        {note('imageId')}

        {networks.length > 0 && (
          <>
            <label for="boot-networkId">Network</label>
            <select id="boot-networkId" name="networkId" {...described('networkId')}>
              <option value="">Project default</option>
              {networks.map((n) => (
                <option value={n.id} key={n.id}>
                  {n.name} ({n.cidr})
                </option>
              ))}
            </select>
            {note('networkId')}
          </>
        )}

        <ErrorNote error={unplaced ?? choices.error} />
        <div class="actions">
          <button type="button" onClick={() => (setError(null), onClose())}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy || !choices.data}>
            Boot
          </button>
        </div>
      </form>
    </Dialog>
  );
}

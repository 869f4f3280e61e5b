import { useState } from 'preact/hooks';
import { ApiError, request } from '../api';
import { ErrorNote, Field, Loading } from '../components';
import { memory } from '../format';
import { useQuery } from '../live';
import { can, useSession } from '../session';

/** Admin: a new flavor. Numbers go to the API as typed; its zod issues come back next to their fields. */
function CreateFlavor({ onCreated }: { onCreated: () => void }) {
  const { token } = useSession();
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const num = (k: string) => Number(data.get(k));
    try {
      await request(token, 'mutation CreateFlavor($input: CreateFlavorInput!) { createFlavor(input: $input) { flavor { id } } }', {
        input: { name: String(data.get('name') ?? ''), vcpus: num('vcpus'), memoryMb: num('memoryMb'), diskGb: num('diskGb') },
      });
      setError(null);
      form.reset();
      onCreated();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err), 'INTERNAL'));
    }
  };
  const unplaced = error && !['name', 'vcpus', 'memoryMb', 'diskGb'].some((f) => error.issueFor(f)) ? error : null;
  return (
    <form onSubmit={submit} noValidate aria-labelledby="new-flavor-title" class="panel-form">
      <h3 id="new-flavor-title">New flavor</h3>
      <div class="form-grid">
        <div>
          <Field form="flavor" name="name" label="Name" error={error} placeholder="c1.large" />
        </div>
        <div>
          <Field form="flavor" name="vcpus" label="vCPUs" error={error} type="number" inputMode="numeric" />
        </div>
        <div>
          <Field form="flavor" name="memoryMb" label="Memory (MB)" error={error} type="number" inputMode="numeric" />
        </div>
        <div>
          <Field form="flavor" name="diskGb" label="Disk (GB)" error={error} type="number" inputMode="numeric" />
        </div>
      </div>
      <ErrorNote error={unplaced} />
      <div class="actions">
        <button type="submit" class="primary">
          Create flavor
        </button>
      </div>
    </form>
  );
}

/** Flavors: the sizes a boot can choose from (images have their own page). */
export function CatalogPage() {
  const session = useSession();
  const data = useQuery<{
    flavors: { id: string; name: string; vcpus: number; memoryMb: number; diskGb: number }[];
  }>('query Flavors { flavors { id name vcpus memoryMb diskGb } }');
  if (data.error) return <ErrorNote error={data.error} />;
  if (!data.data) return <Loading />;
  return (
    <section aria-labelledby="catalog-title">
      <h1 id="catalog-title">Flavors</h1>
      <div>
        <section aria-labelledby="flavors-title">
          <h2 id="flavors-title" class="visually-hidden">Flavors</h2>
          <div class="table-wrap">
            <table aria-labelledby="flavors-title">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">vCPU</th>
                  <th scope="col">Memory</th>
                  <th scope="col">Disk</th>
                </tr>
              </thead>
              <tbody>
                {data.data.flavors.map((f) => (
                  <tr key={f.id}>
                    <th scope="row">{f.name}</th>
                    <td>{f.vcpus}</td>
                    <td>{memory(f.memoryMb)}</td>
                    <td>{f.diskGb} GB</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {can(session, 'createFlavor', 'admin') && <CreateFlavor onCreated={data.reload} />}
        </section>
      </div>
    </section>
  );
}

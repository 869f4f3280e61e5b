import { ErrorNote, Loading, Badge } from '../components';
import { bytes, memory } from '../format';
import { useQuery } from '../live';

/** Flavors and images: what a boot can choose from. */
export function CatalogPage() {
  const data = useQuery<{
    flavors: { id: string; name: string; vcpus: number; memoryMb: number; diskGb: number }[];
    images: { id: string; name: string; format: string; sizeBytes: number; status: string }[];
  }>('query Catalog { flavors { id name vcpus memoryMb diskGb } images { id name format sizeBytes status } }');
  if (data.error) return <ErrorNote error={data.error} />;
  if (!data.data) return <Loading />;
  return (
    <section aria-labelledby="catalog-title">
      <h1 id="catalog-title">Flavors and images</h1>
      <div class="columns">
        <section aria-labelledby="flavors-title">
          <h2 id="flavors-title">Flavors</h2>
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
        </section>
        <section aria-labelledby="images-title">
          <h2 id="images-title">Images</h2>
          <div class="table-wrap">
            <table aria-labelledby="images-title">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Format</th>
                  <th scope="col">Size</th>
                  <th scope="col">Status</th>
                </tr>
              </thead>
              <tbody>
                {data.data.images.map((i) => (
                  <tr key={i.id}>
                    <th scope="row">{i.name}</th>
                    <td>{i.format}</td>
                    <td>{bytes(i.sizeBytes)}</td>
                    <td>
                      <Badge value={i.status} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      </div>
    </section>
  );
}

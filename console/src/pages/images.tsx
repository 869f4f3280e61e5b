import { useState } from 'preact/hooks';
import { ApiError, request } from '../api';
import { Badge, ErrorNote, Field, Loading, SelectField, unplacedError, useConfirm } from '../components';
import { bytes, dateTime } from '../format';
import { useLiveRows, useMutation } from '../live';
import { can, useSession, type Session } from '../session';

interface ImageView {
  id: string;
  name: string;
  format: string;
  sizeBytes: number;
  status: string;
  visibility: string;
  projectId: string | null;
  checksum: string | null;
  errorReason: string | null;
  createdAt: string | null;
}

const IMAGE = 'id name format sizeBytes status visibility projectId checksum errorReason createdAt';

/** What an upload has sent so far, as the browser reports it. */
interface Upload {
  imageId: string;
  file: string;
  loaded: number;
  total: number;
  done: boolean;
}

/**
 * PUT the file to the image's upload URL with the session's token. XMLHttpRequest, not fetch: only it
 * reports upload progress. The answer is the API's JSON ({ code, message } when refused).
 */
function putFile(token: string, url: string, file: File, onProgress: (loaded: number, total: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let body: { code?: string; message?: string } = {};
      try {
        body = JSON.parse(xhr.responseText) as typeof body;
      } catch {
        // not JSON: the status says enough
      }
      reject(new ApiError(body.message ?? `upload failed (HTTP ${xhr.status})`, body.code ?? 'INTERNAL'));
    };
    xhr.onerror = () => reject(new ApiError('the upload was interrupted', 'INTERNAL'));
    xhr.send(file);
  });
}

const mayChange = (s: Session, i: ImageView) => can(s, 'deleteImage') && (s.role === 'ADMIN' || (i.visibility === 'PRIVATE' && i.projectId === s.projectId));

/** A new image from a file: createImage, then the bytes with a progress bar; the status follows live. */
function UploadImage({ onCreated }: { onCreated: (image: ImageView) => void }) {
  const session = useSession();
  const create = useMutation();
  const [upload, setUpload] = useState<Upload | null>(null);
  const [uploadError, setUploadError] = useState<ApiError | null>(null);
  const [fileError, setFileError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const file = data.get('file');
    if (!(file instanceof File) || file.size === 0) return setFileError('Choose the image file to upload.');
    setFileError(null);
    setUploadError(null);
    const input: Record<string, unknown> = { name: String(data.get('name') ?? ''), format: String(data.get('format') ?? '') };
    if (data.get('visibility')) input.visibility = String(data.get('visibility'));
    const made = await create.run<{ createImage: { image: ImageView; uploadUrl: string } }>(
      `mutation CreateImage($input: CreateImageInput!) { createImage(input: $input) { image { ${IMAGE} } uploadUrl } }`,
      { input },
    );
    if (!made) return;
    const { image, uploadUrl } = made.createImage;
    onCreated(image);
    form.reset();
    setUpload({ imageId: image.id, file: file.name, loaded: 0, total: file.size, done: false });
    try {
      await putFile(session.token, uploadUrl, file, (loaded, total) => setUpload((u) => u && { ...u, loaded, total }));
      setUpload((u) => u && { ...u, loaded: u.total, done: true });
    } catch (err) {
      setUploadError(err instanceof ApiError ? err : new ApiError(String(err), 'INTERNAL'));
      setUpload((u) => u && { ...u, done: true });
    }
  };
  const percent = upload ? Math.round((upload.loaded / Math.max(upload.total, 1)) * 100) : 0;
  return (
    <form onSubmit={submit} noValidate aria-labelledby="upload-title" class="panel-form">
      <h2 id="upload-title">Upload an image</h2>
      <div class="form-grid">
        <div>
          <Field form="image" name="name" label="Name" error={create.error} placeholder="debian-12" />
        </div>
        <div>
          <SelectField form="image" name="format" label="Format" error={create.error} options={[{ value: 'qcow2', label: 'qcow2' }, { value: 'raw', label: 'raw' }]} />
        </div>
        {session.role === 'ADMIN' && (
          <div>
            <SelectField
              form="image"
              name="visibility"
              label="Visibility"
              error={create.error}
              options={[
                { value: 'PRIVATE', label: 'private (this project)' },
                { value: 'PUBLIC', label: 'public (every project)' },
              ]}
            />
          </div>
        )}
        <div>
          <label for="image-file">File</label>
          <input id="image-file" name="file" type="file" {...(fileError ? { 'aria-invalid': true, 'aria-describedby': 'image-file-error' } : {})} />
          {fileError && (
            <span id="image-file-error" class="field-error">
              {fileError}
            </span>
          )}
        </div>
      </div>
      <ErrorNote error={unplacedError(create.error, ['name', 'format', 'visibility'])} />
      {upload && (
        <div class="upload" role="group" aria-label="Upload">
          <label for="upload-progress">
            {upload.done ? 'Sent' : 'Sending'} {upload.file}
          </label>
          <progress id="upload-progress" max={upload.total} value={upload.loaded} aria-valuetext={`${bytes(upload.loaded)} of ${bytes(upload.total)}`} />
          <span class="muted" aria-live="polite">
            {bytes(upload.loaded)} of {bytes(upload.total)} ({percent}%)
          </span>
        </div>
      )}
      <ErrorNote error={uploadError} />
      <div class="actions">
        <button type="submit" class="primary" disabled={create.busy || (upload !== null && !upload.done)}>
          Upload
        </button>
      </div>
    </form>
  );
}

/** Images: the catalog a boot picks from, each one's status live (imageChanged), uploads and deletes. */
export function ImagesPage() {
  const session = useSession();
  const remove = useMutation();
  const { ask, dialog } = useConfirm();
  const [gone, setGone] = useState<Set<string>>(new Set());
  const { rows, error, merge } = useLiveRows<ImageView>(
    async () => (await request<{ images: ImageView[] }>(session.token, `query Images { images { ${IMAGE} } }`)).images,
    { query: `subscription ImagesLive { imageChanged { ${IMAGE} } }`, pick: (d: { imageChanged: ImageView }) => d.imageChanged },
  );
  const shown = (rows ?? []).filter((i) => !gone.has(i.id) && i.status !== 'DELETED').sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  const del = async (i: ImageView) => {
    if (await remove.run('mutation DeleteImage($id: ID!) { deleteImage(input: {id: $id}) { image { id status } } }', { id: i.id })) setGone((g) => new Set(g).add(i.id));
  };
  return (
    <section aria-labelledby="images-title">
      <h1 id="images-title">Images</h1>
      <ErrorNote error={error ?? remove.error} />
      {!rows ? (
        <Loading />
      ) : (
        <div class="table-wrap">
          <table aria-labelledby="images-title">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Format</th>
                <th scope="col">Visibility</th>
                <th scope="col">Size</th>
                <th scope="col">Checksum (sha256)</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {shown.length === 0 && (
                <tr>
                  <td colSpan={8} class="muted">
                    No images yet.
                  </td>
                </tr>
              )}
              {shown.map((i) => (
                <tr key={i.id} data-image-id={i.id} data-image-name={i.name}>
                  <th scope="row">{i.name}</th>
                  <td class="status">
                    <span class="badges">
                      <Badge value={i.status} />
                      {i.errorReason && <span class="error-inline">{i.errorReason}</span>}
                    </span>
                  </td>
                  <td>{i.format}</td>
                  <td>{i.visibility.toLowerCase()}</td>
                  <td>{bytes(i.sizeBytes)}</td>
                  <td class="mono" title={i.checksum ?? undefined}>
                    {i.checksum ? `${i.checksum.slice(0, 12)}…` : '—'}
                  </td>
                  <td>{dateTime(i.createdAt)}</td>
                  <td>
                    {mayChange(session, i) && (
                      <button
                        type="button"
                        class="danger-text"
                        aria-label={`Delete ${i.name}`}
                        onClick={() => ask('Delete', i.name, 'The image and its bytes are deleted. Instances booted from it keep running.', () => void del(i))}
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
      {can(session, 'createImage') && <UploadImage onCreated={(i) => merge([i])} />}
      {dialog}
    </section>
  );
}

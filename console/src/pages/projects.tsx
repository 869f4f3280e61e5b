import { useState } from 'preact/hooks';
import { ApiError, request } from '../api';
import { ErrorNote, Loading } from '../components';
import { useQuery } from '../live';
import { useSession } from '../session';

/** Admin: projects, and tokens for them. A new token's secret is shown once, as the API returns it once. */
export function ProjectsPage() {
  const session = useSession();
  const projects = useQuery<{ projects: { id: string; name: string }[] }>('query Projects { projects { id name } }');
  const [error, setError] = useState<ApiError | null>(null);
  const [issued, setIssued] = useState<{ token: string; projectId: string; role: string } | null>(null);

  const call = async (query: string, variables: Record<string, unknown>) => {
    try {
      const r = await request<Record<string, unknown>>(session.token, query, variables);
      setError(null);
      projects.reload();
      return r;
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL'));
      return null;
    }
  };
  const createProject = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const name = String(new FormData(form).get('name') ?? '');
    if (await call('mutation CreateProject($name: String!) { createProject(input: {name: $name}) { project { id } } }', { name })) form.reset();
  };
  const createToken = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const r = await call('mutation CreateToken($p: ID!, $r: Role!) { createToken(input: {projectId: $p, role: $r}) { token projectId role } }', {
      p: form.get('projectId'),
      r: form.get('role'),
    });
    if (r) setIssued(r.createToken as { token: string; projectId: string; role: string });
  };
  const list = projects.data?.projects ?? [];
  const nameOf = (id: string) => list.find((p) => p.id === id)?.name ?? id;

  return (
    <section aria-labelledby="projects-title">
      <h1 id="projects-title">Projects and tokens</h1>
      <ErrorNote error={projects.error ?? error} />
      <div class="columns">
        <section aria-labelledby="project-list-title">
          <h2 id="project-list-title">Projects</h2>
          {!projects.data ? (
            <Loading />
          ) : (
            <ul class="plain">
              {list.map((p) => (
                <li key={p.id}>
                  <strong>{p.name}</strong> <span class="muted mono">{p.id}</span>
                </li>
              ))}
              {list.length === 0 && <li class="muted">No projects yet.</li>}
            </ul>
          )}
          <form onSubmit={createProject} class="inline-form">
            <label for="project-name">New project</label>
            <input id="project-name" name="name" required autocomplete="off" />
            <button type="submit" class="primary">
              Create project
            </button>
          </form>
        </section>
        <section aria-labelledby="token-title">
          <h2 id="token-title">Issue a token</h2>
          <form onSubmit={createToken}>
            <label for="token-project">Project</label>
            <select id="token-project" name="projectId">
              {list.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
            <label for="token-role">Role</label>
            <select id="token-role" name="role">
              <option value="MEMBER">member</option>
              <option value="READER">reader</option>
              <option value="ADMIN">admin</option>
            </select>
            <div class="actions">
              <button type="submit" class="primary" disabled={list.length === 0}>
                Issue token
              </button>
            </div>
          </form>
          {issued && (
            <div class="notice" role="status">
              <p>
                A {issued.role.toLowerCase()} token for {nameOf(issued.projectId)}. Copy it now: it is not shown again.
              </p>
              <code class="token" tabIndex={0}>
                {issued.token}
              </code>
            </div>
          )}
        </section>
      </div>
    </section>
  );
}

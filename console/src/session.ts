import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { closeSocket, request } from './api';

export type Role = 'ADMIN' | 'MEMBER' | 'READER';

/** Who is signed in and what the API offers: pages and buttons show only what both allow. */
export interface Session {
  token: string;
  role: Role;
  projectId: string;
  projectName: string | null;
  /** Root query and mutation field names, so a page appears once its API exists. */
  queries: Set<string>;
  mutations: Set<string>;
}

const KEY = 'stratus.token';

// sessionStorage only: the token goes with the tab, never into long-lived storage.
export const storedToken = (): string | null => sessionStorage.getItem(KEY);

export async function signIn(token: string): Promise<Session> {
  const data = await request<{
    viewer: { role: Role; projectId: string; project: { name: string } | null };
    __schema: { queryType: { fields: { name: string }[] }; mutationType: { fields: { name: string }[] } | null };
  }>(
    token,
    `query Viewer { viewer { role projectId project { name } }
       __schema { queryType { fields { name } } mutationType { fields { name } } } }`,
  );
  sessionStorage.setItem(KEY, token);
  return {
    token,
    role: data.viewer.role,
    projectId: data.viewer.projectId,
    projectName: data.viewer.project?.name ?? null,
    queries: new Set(data.__schema.queryType.fields.map((f) => f.name)),
    mutations: new Set((data.__schema.mutationType?.fields ?? []).map((f) => f.name)),
  };
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  closeSocket();
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in view');
  return s;
}

/** May this session run `mutation`? The API must have it and the role must allow changes. */
export function can(s: Pick<Session, 'role' | 'mutations'>, mutation: string, needs: 'writer' | 'admin' = 'writer'): boolean {
  if (!s.mutations.has(mutation)) return false;
  return needs === 'admin' ? s.role === 'ADMIN' : s.role !== 'READER';
}

import { randomBytes, randomUUID } from 'node:crypto';
import { StratusError } from '../../domain/errors.js';
import { projectStream, tokenStream } from '../../domain/events.js';
import { hashToken, projectDecider, tokenDecider, type Caller, type Project, type Role } from '../../domain/identity.js';
import type { CreateProjectInput, CreateTokenInput } from '../../domain/inputs.js';
import { readFolded } from '../../activities/events.js';
import type { Runtime } from '../../server/runtime.js';
import { requireAdmin } from './access.js';
import { appendNew, commandMetadata, now } from './operations.js';

export async function createProject(rt: Runtime, caller: Caller, input: CreateProjectInput): Promise<{ project: Project }> {
  requireAdmin(caller);
  const id = randomUUID();
  const events = projectDecider.decide({ type: 'createProject', data: { id, name: input.name, createdAt: now() } }, null);
  await appendNew(rt, projectStream(id), events, 'noStream', commandMetadata(caller));
  return { project: events.reduce(projectDecider.evolve, null as Project | null)! };
}

/**
 * A bearer token for a project with a role. The secret is returned here once and never stored: the log
 * keeps its SHA-256 only (the API looks tokens up by that hash).
 */
export async function createToken(
  rt: Runtime,
  caller: Caller,
  input: CreateTokenInput,
): Promise<{ token: string; tokenId: string; projectId: string; role: Role }> {
  requireAdmin(caller);
  const { state: project } = await readFolded(rt, projectStream(input.projectId), projectDecider);
  if (!project) throw new StratusError('NOT_FOUND', `project ${input.projectId} not found`, { id: input.projectId });
  const token = `stratus_${randomBytes(32).toString('base64url')}`;
  const tokenId = randomUUID();
  const events = tokenDecider.decide(
    { type: 'createToken', data: { tokenId, tokenHash: hashToken(token), projectId: project.id, role: input.role, createdAt: now() } },
    null,
  );
  await appendNew(rt, tokenStream(tokenId), events, 'noStream', commandMetadata(caller));
  return { token, tokenId, projectId: project.id, role: input.role };
}

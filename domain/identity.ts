import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { Id, Timestamp } from './scalars.js';

export const Role = z.enum(['ADMIN', 'MEMBER', 'READER']);
export type Role = z.infer<typeof Role>;

export const ProjectName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'a name is 1-63 letters, digits, . _ - and starts with a letter or digit');

export const Project = z.object({ id: Id, name: z.string(), createdAt: Timestamp });
export type Project = z.infer<typeof Project>;

/** A token as stored: only its SHA-256, never the secret, which is shown once at creation. */
export const Token = z.object({ tokenId: Id, tokenHash: z.string().regex(/^[0-9a-f]{64}$/), projectId: Id, role: Role, createdAt: Timestamp });
export type Token = z.infer<typeof Token>;

export const identityEvents = {
  ProjectCreated: z.object({ id: Id, name: ProjectName, createdAt: Timestamp }),
  TokenCreated: Token,
} satisfies Record<string, z.ZodType>;
export type IdentityEvent = EventOf<typeof identityEvents>;
export type ProjectEvent = Extract<IdentityEvent, { type: 'ProjectCreated' }>;
export type TokenEvent = Extract<IdentityEvent, { type: 'TokenCreated' }>;

/** The hash a bearer token is looked up by. Tokens are long random strings, so an unsalted SHA-256 suffices. */
export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

/** Who is calling, from a verified token. Also the `actor` recorded on every operation. */
export const Caller = z.object({ tokenId: z.string().min(1), projectId: Id, role: Role });
export type Caller = z.infer<typeof Caller>;

/** Admin scope is explicit: only an ADMIN token reaches other projects, hosts, flavors and images. */
export const isAdmin = (caller: Caller): boolean => caller.role === 'ADMIN';

/** May `caller` see `projectId`'s resources? Anything it may not see does not exist for it (NOT_FOUND). */
export const canRead = (caller: Caller, projectId: string): boolean => isAdmin(caller) || caller.projectId === projectId;

/** May `caller` change `projectId`'s resources? READER tokens never may. */
export const canMutate = (caller: Caller, projectId: string): boolean =>
  isAdmin(caller) || (caller.role === 'MEMBER' && caller.projectId === projectId);

export type ProjectCommand = { type: 'createProject'; data: z.infer<typeof identityEvents.ProjectCreated> };
export type TokenCommand = { type: 'createToken'; data: Token };

export const projectDecider: Decider<Project | null, ProjectCommand, ProjectEvent> = {
  decide: (command, state) => {
    if (state) throw new StratusError('CONFLICT', `project ${state.id} already exists`, { id: state.id });
    return [{ type: 'ProjectCreated', data: command.data }];
  },
  evolve: (_state, event) => event.data,
  initialState: () => null,
};

export const tokenDecider: Decider<Token | null, TokenCommand, TokenEvent> = {
  decide: (command, state) => {
    if (state) throw new StratusError('CONFLICT', `token ${state.tokenId} already exists`, { id: state.tokenId });
    return [{ type: 'TokenCreated', data: command.data }];
  },
  evolve: (_state, event) => event.data,
  initialState: () => null,
};

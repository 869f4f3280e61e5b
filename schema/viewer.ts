import { callAgent } from '../activities/agentCalls.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import type { Role } from '../domain/identity.js';
import { builder, callerOf } from './builder.js';
import { InstanceType, ProjectType, RoleEnum } from './types.js';

/*
 * What a client needs to know about itself and the catalogue of projects before it can draw anything:
 * the web console hides what the token's role may not do, and an admin picks a project for a token.
 */

const ViewerType = builder.objectRef<{ tokenId: string; projectId: string; role: Role }>('Viewer').implement({
  description: 'The caller its bearer token proved.',
  fields: (t) => ({
    projectId: t.exposeID('projectId'),
    role: t.field({ type: RoleEnum, resolve: (v) => v.role }),
    project: t.field({
      type: ProjectType,
      nullable: true,
      resolve: async (v, _a, ctx) => {
        const [row] = await ctx.rt.db.query<{ id: string; name: string }>('SELECT id, name FROM rm_projects WHERE id = $1', [v.projectId]);
        return row ?? null;
      },
    }),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({ type: ViewerType, authScopes: { reader: true }, resolve: (_r, _a, ctx) => callerOf(ctx) }),
);

builder.queryField('projects', (t) =>
  t.field({
    type: [ProjectType],
    description: 'Every project, oldest first (admin).',
    authScopes: { admin: true },
    resolve: (_r, _a, ctx) => ctx.rt.db.query<{ id: string; name: string }>('SELECT id, name FROM rm_projects ORDER BY created_at, id'),
  }),
);

builder.objectField(InstanceType, 'consoleLog', (t) =>
  t.string({
    nullable: true,
    description: 'The tail of its serial console, read from its host agent; null while it has no host.',
    args: { lines: t.arg.int({ required: false }) },
    resolve: async (instance, { lines }, ctx) => {
      if (!instance.hostId) return null;
      const { text } = await callAgent(ctx.rt, instance.hostId, 'consoleLog', { name: vmNameOf(instance), lines: Math.min(Math.max(lines ?? 100, 1), 10_000) });
      return text;
    },
  }),
);

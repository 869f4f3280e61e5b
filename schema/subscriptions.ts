import { canRead, isAdmin } from '../domain/identity.js';
import type { Change } from '../projections/index.js';
import { builder, callerOf } from './builder.js';
import * as read from './readModel.js';
import { EventType, InstanceType, OperationType } from './types.js';
import { failedOperationsFeed } from './failedOperations.js';
import { requireAdmin } from './commands/access.js';
import { toGraphQLError } from './errors.js';

/**
 * CONTRACT.md "Subscriptions", fed by the projections' NOTIFYs (any process) through the ChangeFeed.
 * Tenancy is checked twice: on the notification's project, and again on the row loaded, so a caller
 * never receives another project's data (another project's id simply never yields anything).
 */
export const visible = (caller: ReturnType<typeof callerOf>, change: Change) =>
  change.projectId === null ? isAdmin(caller) : canRead(caller, change.projectId);

builder.subscriptionType({
  fields: (t) => ({
    instanceChanged: t.field({
      type: InstanceType,
      authScopes: { reader: true },
      description: 'The instance after each change; every instance of the caller when id is omitted.',
      args: { id: t.arg.id({ required: false }) },
      subscribe: (_r, { id }, ctx) => {
        const caller = callerOf(ctx);
        return ctx.changes.follow(
          (c) => c.kind === 'instance' && (id == null || c.id === String(id)) && visible(caller, c),
          (c) => read.instanceById(ctx.rt, caller, c.id),
        );
      },
      resolve: (instance) => instance,
    }),
    operationChanged: t.field({
      type: OperationType,
      authScopes: { reader: true },
      description: 'The operation after each step.',
      args: { id: t.arg.id({ required: true }) },
      subscribe: (_r, { id }, ctx) => {
        const caller = callerOf(ctx);
        return ctx.changes.follow(
          (c) => c.kind === 'operation' && c.id === String(id) && visible(caller, c),
          (c) => read.operationById(ctx.rt, caller, c.id),
        );
      },
      resolve: (operation) => operation,
    }),
    failedOperations: t.field({
      type: OperationType,
      authScopes: { admin: true },
      description: 'Each operation as it is recorded FAILED (admin), with its failing step, error, attempts and trace.',
      // The auth scope is checked per yielded value, not at subscribe: refuse a non-admin here, at once.
      subscribe: (_r, _a, ctx) => {
        try {
          requireAdmin(callerOf(ctx));
        } catch (e) {
          // Thrown from subscribe, a plain error is a 500 to yoga; the one mapper makes it FORBIDDEN.
          throw toGraphQLError(e);
        }
        return failedOperationsFeed(ctx.changes, (id) => read.operationById(ctx.rt, callerOf(ctx), id));
      },
      resolve: (operation) => operation,
    }),
    events: t.field({
      type: EventType,
      authScopes: { reader: true },
      description: 'Events as they are appended (once the audit projection has them), optionally of streams starting with streamPrefix.',
      args: { streamPrefix: t.arg.string({ required: false }) },
      subscribe: (_r, { streamPrefix }, ctx) => {
        const caller = callerOf(ctx);
        return ctx.changes.follow(
          (c) => c.kind === 'event' && c.position !== undefined && (!streamPrefix || (c.streamId ?? '').startsWith(streamPrefix)) && visible(caller, c),
          async (c) => {
            const event = await read.auditEventAt(ctx.rt, c.position!);
            return event && (event.projectId === null ? isAdmin(caller) : canRead(caller, event.projectId)) ? event : null;
          },
        );
      },
      resolve: (event) => event,
    }),
  }),
});

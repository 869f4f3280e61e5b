import { builder, callerOf } from './builder.js';
import * as read from './readModel.js';
import { visible } from './subscriptions.js';
import { HostType, OperationType } from './types.js';

/*
 * Live lists for clients that show many resources at once (the web console's operations list and
 * hosts page). They follow the projections' own change notifications, so each copy is read after
 * its projection committed it: a list fed by the audit feed instead could read a row its projection
 * had not folded yet and keep that stale copy.
 */

builder.subscriptionField('operationsChanged', (t) =>
  t.field({
    type: OperationType,
    authScopes: { reader: true },
    description: 'Each operation of the caller (admin: of every project) after each change.',
    subscribe: (_r, _a, ctx) => {
      const caller = callerOf(ctx);
      return ctx.changes.follow(
        (c) => c.kind === 'operation' && visible(caller, c),
        (c) => read.operationById(ctx.rt, caller, c.id),
      );
    },
    resolve: (operation) => operation,
  }),
);

builder.subscriptionField('hostChanged', (t) =>
  t.field({
    type: HostType,
    authScopes: { admin: true },
    description: 'The host after each change (state, allocation); every host when id is omitted.',
    args: { id: t.arg.id({ required: false }) },
    subscribe: (_r, { id }, ctx) =>
      ctx.changes.follow(
        (c) => c.kind === 'host' && (id == null || c.id === String(id)),
        (c) => read.hostById(ctx.rt, c.id),
      ),
    resolve: (host) => host,
  }),
);

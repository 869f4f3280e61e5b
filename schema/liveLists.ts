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

/** The change kinds `resourceChanged` tells of, by their GraphQL names. */
const NOTICE_KINDS = { NETWORK: 'network', ADDRESS: 'address', SECURITY_GROUP: 'securityGroup' } as const;
type NoticeKind = keyof typeof NOTICE_KINDS;
const ResourceKindEnum = builder.enumType('ResourceKind', { values: Object.keys(NOTICE_KINDS) as NoticeKind[] });
const ResourceChangeType = builder.objectRef<{ kind: NoticeKind; id: string }>('ResourceChange').implement({
  description: 'That a resource changed (its projection committed it): a view showing it reads itself again.',
  fields: (t) => ({ kind: t.field({ type: ResourceKindEnum, resolve: (n) => n.kind }), id: t.exposeID('id') }),
});

/*
 * Networks, addresses and security groups change by synchronous mutations and by operations, and a
 * list of them (the console's pages) needs to know when to read itself again, with no polling. The
 * notice names the resource only; the reread goes through the same tenancy-checked queries. An
 * external network's own changes (no project) reach admins only; an address on one is its holder's.
 */
builder.subscriptionField('resourceChanged', (t) =>
  t.field({
    type: ResourceChangeType,
    authScopes: { reader: true },
    description: "A notice of each change to one of the caller's networks, addresses or security groups (admin: everyone's), once its projection committed it.",
    args: { kinds: t.arg({ type: [ResourceKindEnum], required: false }) },
    subscribe: (_r, { kinds }, ctx) => {
      const caller = callerOf(ctx);
      const wanted = (kinds?.length ? kinds : (Object.keys(NOTICE_KINDS) as NoticeKind[])).map((k) => [NOTICE_KINDS[k], k] as const);
      const byChange = new Map<string, NoticeKind>(wanted);
      return ctx.changes.follow(
        (c) => byChange.has(c.kind) && visible(caller, c),
        async (c) => ({ kind: byChange.get(c.kind)!, id: c.id }),
      );
    },
    resolve: (notice) => notice,
  }),
);

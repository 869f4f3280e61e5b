import { createHash } from 'node:crypto';

/**
 * A name-based UUID (RFC 9562 version 5: SHA-1 over a namespace UUID and a name). The same name in the
 * same namespace always gives the same id, which is what makes repeats detectable: a repeated
 * `clientRequestId` maps to the same operation stream, a re-seeded default flavor to the same flavor stream,
 * and the event store's "no stream yet" expectation turns the repeat into a clean conflict.
 */
export function nameBasedUuid(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  if (ns.length !== 16) throw new TypeError(`namespace must be a UUID, got ${namespace}`);
  const bytes = createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Fixed namespaces, one per kind of name, so equal names of different kinds never collide. Never change them. */
export const idNamespaces = {
  operation: '6f1c1c1e-8a55-4a52-9a43-0c6e2f1b7d01',
  flavor: '6f1c1c1e-8a55-4a52-9a43-0c6e2f1b7d02',
  network: '6f1c1c1e-8a55-4a52-9a43-0c6e2f1b7d10',
  address: '6f1c1c1e-8a55-4a52-9a43-0c6e2f1b7d11',
  securityGroup: '6f1c1c1e-8a55-4a52-9a43-0c6e2f1b7d12',
} as const;

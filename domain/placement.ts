import type { Host } from './host.js';
import { freeResources } from './host.js';
import { fitsIn, type Resources } from './resources.js';

/**
 * Nova's filter scheduler, reduced to what Stratus knows: filter the hosts that are UP and have room
 * for `flavor` (and are not excluded, e.g. the hosts a reschedule already failed on, or the source of a
 * migration), then weigh them by free memory, most first, with the id breaking ties so the order is
 * deterministic. The caller claims on the first and moves down the list when a claim loses a race.
 */
export function candidateHosts(
  hosts: readonly Pick<Host, 'id' | 'state' | 'capacity' | 'allocated'>[],
  flavor: Resources,
  options: { excludeHostIds?: Iterable<string> } = {},
): string[] {
  const excluded = new Set(options.excludeHostIds ?? []);
  return hosts
    .filter((h) => h.state === 'UP' && !excluded.has(h.id) && fitsIn(flavor, freeResources(h)))
    .map((h) => ({ id: h.id, freeMemoryMb: freeResources(h).memoryMb }))
    .sort((a, b) => b.freeMemoryMb - a.freeMemoryMb || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((h) => h.id);
}

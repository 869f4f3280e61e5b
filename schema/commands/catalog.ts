import { randomUUID } from 'node:crypto';
import {
  flavorDecider,
  flavorIdFor,
  imageDecider,
  type CreateFlavorInput,
  type Flavor,
  type Image,
  type RegisterImageInput,
} from '../../domain/catalog.js';
import { StratusError } from '../../domain/errors.js';
import { flavorStream, imageStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { WrongExpectedVersion } from '../../eventstore/index.js';
import type { Runtime } from '../../server/runtime.js';
import { requireAdmin } from './access.js';
import { appendNew, commandMetadata, now } from './operations.js';

/** A flavor's id follows from its name (domain/catalog.ts), so a second flavor of the same name is CONFLICT. */
export async function createFlavor(rt: Runtime, caller: Caller, input: CreateFlavorInput): Promise<{ flavor: Flavor }> {
  requireAdmin(caller);
  const id = flavorIdFor(input.name);
  const events = flavorDecider.decide({ type: 'createFlavor', data: { id, ...input, createdAt: now() } }, null);
  try {
    await appendNew(rt, flavorStream(id), events, 'noStream', commandMetadata(caller));
  } catch (e) {
    if (e instanceof WrongExpectedVersion) throw new StratusError('CONFLICT', `flavor ${input.name} already exists`, { id });
    throw e;
  }
  return { flavor: events.reduce(flavorDecider.evolve, null as Flavor | null)! };
}

/** Records an image (Glance's metadata); usable at once (`active`). */
export async function registerImage(rt: Runtime, caller: Caller, input: RegisterImageInput): Promise<{ image: Image }> {
  requireAdmin(caller);
  const id = randomUUID();
  const events = imageDecider.decide({ type: 'registerImage', data: { id, ...input, status: 'active', registeredAt: now() } }, null);
  await appendNew(rt, imageStream(id), events, 'noStream', commandMetadata(caller));
  return { image: events.reduce(imageDecider.evolve, null as Image | null)! };
}

import { randomUUID } from 'node:crypto';
import { decideAndAppend, readFolded } from '../../activities/events.js';
import { flavorDecider } from '../../domain/catalog.js';
import { StratusError } from '../../domain/errors.js';
import { flavorStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { PRICE_SHEET_STREAM, priceSheetDecider, type Price, type SetPriceInput } from '../../domain/priceSheet.js';
import type { Runtime } from '../../server/runtime.js';
import { requireAdmin } from './access.js';
import { commandMetadata, now } from './operations.js';

/** CONTRACT.md `setPrice`: effective from now on; usage before keeps the price it had. */
export async function setPrice(rt: Runtime, caller: Caller, input: SetPriceInput): Promise<{ price: Price }> {
  requireAdmin(caller);
  if (input.flavorId) {
    const flavor = await readFolded(rt, flavorStream(input.flavorId), flavorDecider);
    if (!flavor.state) throw new StratusError('NOT_FOUND', `flavor ${input.flavorId} not found`, { id: input.flavorId });
  }
  const at = now();
  const { appended } = await decideAndAppend(
    rt,
    PRICE_SHEET_STREAM,
    priceSheetDecider,
    (sheet) => priceSheetDecider.decide({ type: 'setPrice', data: { ...input, at } }, sheet),
    { key: `setPrice/${randomUUID()}`, metadata: commandMetadata(caller) },
  );
  return { price: appended[0]!.data };
}

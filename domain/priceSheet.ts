import { z } from 'zod';
import type { Decider, EventOf } from './decider.js';
import { StratusError } from './errors.js';
import { Id, Timestamp } from './scalars.js';
import { UsageType } from './usage.js';

/** ISO 4217 alphabetic code. */
export const Currency = z.string().regex(/^[A-Z]{3}$/, 'a currency is an ISO 4217 code such as USD');

export const DEFAULT_CURRENCY = 'USD';

/** CONTRACT.md `setPrice(input: {usageType, flavorId?, unitPrice, currency?})`: a price per unit (hour or GB-hour). */
export const SetPriceInput = z.object({
  usageType: UsageType,
  // Per-flavor prices only make sense for the VM types; a volume has no flavor.
  flavorId: Id.nullish(),
  unitPrice: z.number().nonnegative().finite().max(1e9),
  currency: Currency.nullish(),
}).refine((p) => !p.flavorId || p.usageType === 'RUNNING_VM' || p.usageType === 'ALLOCATED_VM', {
  message: 'only RUNNING_VM and ALLOCATED_VM are priced per flavor',
  path: ['flavorId'],
});
export type SetPriceInput = z.infer<typeof SetPriceInput>;

export const Price = z.object({
  usageType: UsageType,
  flavorId: Id.nullable(),
  unitPrice: z.number().nonnegative(),
  currency: Currency,
  effectiveFrom: Timestamp,
});
export type Price = z.infer<typeof Price>;

export const priceSheetEvents = {
  /** From `effectiveFrom` on, this usage type (and flavor) costs `unitPrice`; earlier usage keeps its price. */
  PriceSet: Price,
} satisfies Record<string, z.ZodType>;
export type PriceSheetEvent = EventOf<typeof priceSheetEvents>;

/** One price sheet for the deployment (CloudStack's quota tariff): one stream, so its currency is checked against every price. */
export const PRICE_SHEET_STREAM = 'pricesheet-default';

export interface PriceSheet {
  currency: string | null;
  prices: Price[];
}

export type PriceSheetCommand = { type: 'setPrice'; data: SetPriceInput & { at: string } };

export const priceSheetDecider: Decider<PriceSheet, PriceSheetCommand, PriceSheetEvent> = {
  decide: ({ data }, sheet) => {
    const currency = data.currency ?? sheet.currency ?? DEFAULT_CURRENCY;
    // A report sums costs into one total: prices in two currencies would add apples to pears.
    if (sheet.currency !== null && currency !== sheet.currency) {
      throw new StratusError('CONFLICT', `the price sheet is in ${sheet.currency}, not ${currency}`, { currency: sheet.currency });
    }
    return [{ type: 'PriceSet', data: { usageType: data.usageType, flavorId: data.flavorId ?? null, unitPrice: data.unitPrice, currency, effectiveFrom: data.at } }];
  },
  evolve: (sheet, event) => ({ currency: event.data.currency, prices: [...sheet.prices, event.data] }),
  initialState: () => ({ currency: null, prices: [] }),
};

/**
 * The price in force for a record that starts at `start`: the newest price set at or before then,
 * one for the record's flavor before one for every flavor. No price: free.
 */
export function priceAt(prices: readonly Price[], usageType: UsageType, flavorId: string | null, start: string): Price | undefined {
  const startMs = Date.parse(start);
  let best: Price | undefined;
  for (const p of prices) {
    if (p.usageType !== usageType || Date.parse(p.effectiveFrom) > startMs) continue;
    if (p.flavorId !== null && p.flavorId !== flavorId) continue;
    if (!best) best = p;
    else if (p.flavorId !== null && best.flavorId === null) best = p;
    else if ((p.flavorId === null) === (best.flavorId === null) && Date.parse(p.effectiveFrom) >= Date.parse(best.effectiveFrom)) best = p;
  }
  return best;
}

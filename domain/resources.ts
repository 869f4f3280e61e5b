import { z } from 'zod';

/** An amount of compute: what a flavor asks for, what a host has, what a claim holds. */
export const Resources = z.object({
  vcpus: z.number().int().nonnegative(),
  memoryMb: z.number().int().nonnegative(),
  diskGb: z.number().int().nonnegative(),
});
export type Resources = z.infer<typeof Resources>;

export const noResources: Resources = { vcpus: 0, memoryMb: 0, diskGb: 0 };

export const addResources = (a: Resources, b: Resources): Resources => ({
  vcpus: a.vcpus + b.vcpus,
  memoryMb: a.memoryMb + b.memoryMb,
  diskGb: a.diskGb + b.diskGb,
});

export const subtractResources = (a: Resources, b: Resources): Resources => ({
  vcpus: a.vcpus - b.vcpus,
  memoryMb: a.memoryMb - b.memoryMb,
  diskGb: a.diskGb - b.diskGb,
});

/** True when `wanted` fits in `free` on every axis. All integers, so the comparison is exact. */
export const fitsIn = (wanted: Resources, free: Resources): boolean =>
  wanted.vcpus <= free.vcpus && wanted.memoryMb <= free.memoryMb && wanted.diskGb <= free.diskGb;

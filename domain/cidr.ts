import { z } from 'zod';

/**
 * IPv4 subnets for IPAM. Addresses are handled as unsigned 32-bit numbers; a subnet is its base and
 * prefix length. Only IPv4: the data plane (one bridge and one dnsmasq range per network) is v4 too.
 */

export const Ipv4 = z.ipv4();

export const ipToNumber = (ip: string): number => ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);

export const numberToIp = (n: number): string => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');

export interface Subnet {
  /** The network address, as written: `10.0.0.0/24`. */
  cidr: string;
  base: number;
  prefix: number;
  size: number;
}

/** Why `text` is not a usable subnet, or the subnet. Host bits must be zero: `10.0.0.5/24` is refused, not guessed at. */
export function parseSubnet(text: string): Subnet | string {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text.trim());
  if (!match || !Ipv4.safeParse(match[1]).success) return `${text} is not an IPv4 CIDR such as 10.0.0.0/24`;
  const prefix = Number(match[2]);
  if (prefix > 32) return `${text} has a prefix longer than 32`;
  const size = 2 ** (32 - prefix);
  const base = ipToNumber(match[1]!);
  if (base % size !== 0) return `${text} has host bits set: the network address is ${numberToIp(base - (base % size))}/${prefix}`;
  return { cidr: `${numberToIp(base)}/${prefix}`, base, prefix, size };
}

export const contains = (subnet: Pick<Subnet, 'base' | 'size'>, ip: string): boolean => {
  const n = ipToNumber(ip);
  return n >= subnet.base && n < subnet.base + subnet.size;
};

export const overlaps = (a: Pick<Subnet, 'base' | 'size'>, b: Pick<Subnet, 'base' | 'size'>): boolean =>
  a.base < b.base + b.size && b.base < a.base + a.size;

/** The network and broadcast addresses: never a host's. */
export const isNetworkOrBroadcast = (subnet: Pick<Subnet, 'base' | 'size'>, ip: string): boolean => {
  const n = ipToNumber(ip);
  return n === subnet.base || n === subnet.base + subnet.size - 1;
};

/** Neutron's default gateway: the first host address. */
export const firstHost = (subnet: Pick<Subnet, 'base'>): string => numberToIp(subnet.base + 1);

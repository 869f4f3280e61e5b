import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { AgentError } from '../driver.js';

/**
 * `ip` (iproute2) and friends as child processes: every device the data plane makes lives in the
 * agent's own network namespace, so each helper takes the namespace's name. Small and idempotent:
 * each `ensure` may run again after a crash or a retried call.
 */

export interface RunResult { code: number | null; out: string; err: string }

export function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out, err }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Runs a command that must succeed; its stderr becomes the error's message. */
export async function must(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await run(cmd, args, input);
  if (r.code !== 0) throw new AgentError('HYPERVISOR_ERROR', `${cmd} ${args.join(' ')} failed: ${(r.err || r.out).trim()}`);
  return r.out;
}

/** `ip netns exec <ns> cmd ...` */
export const inNs = (ns: string, cmd: string, args: string[], input?: string) => must('ip', ['netns', 'exec', ns, cmd, ...args], input);

export async function nsExists(ns: string): Promise<boolean> {
  return (await must('ip', ['netns', 'list'])).split('\n').some((l) => l.split(' ')[0] === ns);
}

/** The agent's namespace: made once, loopback up, bridged IPv4 handed to nftables' inet hooks (for conntrack). */
export async function ensureNamespace(ns: string): Promise<void> {
  if (!(await nsExists(ns))) await must('ip', ['netns', 'add', ns]);
  await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // A modular kernel (Debian's) loads br_netfilter only when asked; a kernel with it built in has the sysctls already.
  if (!existsSync('/proc/sys/net/bridge')) await run('modprobe', ['br_netfilter']);
  await inNs(ns, 'sysctl', ['-q', '-w', 'net.bridge.bridge-nf-call-iptables=1']);
}

export async function linkExists(ns: string | undefined, name: string): Promise<boolean> {
  const r = await run('ip', [...(ns ? ['-n', ns] : []), 'link', 'show', 'dev', name]);
  return r.code === 0;
}

/** Moves a device of the host's namespace into `ns` (the underlay uplink at start, a tap QEMU just opened). */
export async function moveIntoNs(ns: string, name: string): Promise<boolean> {
  if (!(await linkExists(undefined, name))) return false;
  await must('ip', ['link', 'set', 'dev', name, 'netns', ns]);
  return true;
}

export async function ensureAddress(ns: string, dev: string, cidr: string): Promise<void> {
  const shown = await must('ip', ['-n', ns, '-o', '-4', 'addr', 'show', 'dev', dev]);
  if (!shown.includes(` ${cidr} `)) await must('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
}

export const linkUp = (ns: string, dev: string) => must('ip', ['-n', ns, 'link', 'set', 'dev', dev, 'up']);

export async function ensureBridge(ns: string, name: string): Promise<void> {
  if (!(await linkExists(ns, name))) await must('ip', ['-n', ns, 'link', 'add', name, 'type', 'bridge']);
  await linkUp(ns, name);
}

/**
 * The network's VXLAN device on the bridge: flooding (ARP, broadcast, unknown unicast) goes to the
 * underlay multicast group, and the kernel learns each remote MAC's host from what arrives.
 */
export async function ensureVxlan(ns: string, opts: { name: string; vni: number; group: string; underlay: string; bridge: string; mtu: number }): Promise<void> {
  if (!(await linkExists(ns, opts.name))) {
    await must('ip', ['-n', ns, 'link', 'add', opts.name, 'type', 'vxlan', 'id', String(opts.vni), 'group', opts.group, 'dev', opts.underlay, 'dstport', '4789']);
  }
  await must('ip', ['-n', ns, 'link', 'set', 'dev', opts.name, 'mtu', String(opts.mtu), 'master', opts.bridge]);
  await linkUp(ns, opts.name);
}

export async function attachToBridge(ns: string, dev: string, bridge: string, mtu: number): Promise<void> {
  await must('ip', ['-n', ns, 'link', 'set', 'dev', dev, 'mtu', String(mtu), 'master', bridge]);
  await linkUp(ns, dev);
}

/** Deletes a device if it is there. */
export async function deleteLink(ns: string, name: string): Promise<void> {
  if (await linkExists(ns, name)) await run('ip', ['-n', ns, 'link', 'del', 'dev', name]);
}

/** The names of the devices in `ns` starting with `prefix`. */
export async function linksWithPrefix(ns: string, prefix: string): Promise<string[]> {
  const out = await must('ip', ['-n', ns, '-o', 'link', 'show']);
  return out.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter((n) => n.startsWith(prefix));
}

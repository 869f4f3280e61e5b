import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomicFile.js';
import { inNs } from './ip.js';
import { commandLineOf } from '../../server/procfs.js';

/**
 * DHCP for a network: one dnsmasq per network in the agent's namespace, bound to the network's bridge,
 * answering only the ports plugged on this host (a `dhcp-host` line per port, `static` range) and
 * serving no DNS. Its files live in <dir>: hosts (MAC,address), pid, leases. A change rewrites the
 * hosts file and sends SIGHUP, which makes dnsmasq read it again.
 */

export interface DhcpNetwork { dir: string; ns: string; bridge: string; network: string; netmask: string; gateway: string; mtu: number }

const files = (dir: string) => ({ hosts: join(dir, 'dhcp-hosts'), pid: join(dir, 'dnsmasq.pid'), leases: join(dir, 'dnsmasq.leases'), log: join(dir, 'dnsmasq.log') });

/** Whether `pid` is still a running dnsmasq (an exited one, even unreaped, has no command line). */
function isDnsmasq(pid: number): boolean {
  return commandLineOf(pid)?.some((arg) => arg.includes('dnsmasq')) ?? false;
}

function pidOf(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(files(dir).pid, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return isDnsmasq(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export const hostsLine = (mac: string, address: string) => `${mac},${address}`;

export function readHosts(dir: string): string[] {
  const f = files(dir).hosts;
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
}

/** Writes the hosts file and makes the network's dnsmasq serve it (starting it if it is not running). */
export async function serveHosts(net: DhcpNetwork, lines: string[]): Promise<void> {
  const f = files(net.dir);
  writeFileAtomic(f.hosts, lines.map((l) => l + '\n').join(''));
  const pid = pidOf(net.dir);
  if (pid) {
    process.kill(pid, 'SIGHUP');
    return;
  }
  await inNs(net.ns, 'dnsmasq', [
    '--conf-file=/dev/null', '--no-hosts', '--no-resolv', '--port=0', '--bind-interfaces', `--interface=${net.bridge}`, '--except-interface=lo',
    `--dhcp-range=${net.network},static,${net.netmask},12h`, `--dhcp-hostsfile=${f.hosts}`, `--dhcp-leasefile=${f.leases}`, `--pid-file=${f.pid}`,
    `--dhcp-option=option:router,${net.gateway}`, `--dhcp-option=option:mtu,${net.mtu}`, `--log-facility=${f.log}`,
    // It rereads the hosts file on SIGHUP, after dropping privileges: the agent's state dir may be private to root.
    '--user=root',
  ]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Signals `pid` and waits until it has exited: dnsmasq daemonizes, so it is no child of ours to wait for. */
async function stopProcess(pid: number): Promise<void> {
  for (const [signal, waitMs] of [['SIGTERM', 3000], ['SIGKILL', 3000]] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    const until = Date.now() + waitMs;
    while (isDnsmasq(pid) && Date.now() < until) await sleep(10);
    if (!isDnsmasq(pid)) return;
  }
  throw new Error(`dnsmasq ${pid} did not exit on SIGKILL`);
}

/**
 * Stops the network's dnsmasq and removes its files (the network's last port left this host). It
 * returns once the process is gone: the bridge it is bound to goes next, and a port plugged right
 * after starts a new one, which must not meet the old.
 */
export async function stopDhcp(dir: string): Promise<void> {
  const pid = pidOf(dir);
  if (pid) await stopProcess(pid);
  rmSync(dir, { recursive: true, force: true });
}

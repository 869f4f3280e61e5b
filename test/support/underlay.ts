import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * The networks a QEMU networking test lays between its agents: an "underlay" namespace with a bridge
 * (multicast snooping off, so the VXLAN group floods to every host) and one veth pair per agent, whose
 * host-side end the agent moves into its own namespace at start; and an "external" namespace (address
 * EXTERNAL_HOST on EXTERNAL_CIDR) with a veth pair per agent whose host-side end goes to the agent's
 * router namespace, where floating addresses answer. Everything carries a random tag, and
 * `destroy` removes the namespaces (the agents' too) and what runs in them, whatever the test did.
 */
export const EXTERNAL_CIDR = '203.0.113.0/24';
export const EXTERNAL_HOST = '203.0.113.254';

export interface TestUnderlay {
  tag: string;
  /** The external namespace, to ping floating addresses from. */
  externalNs: string;
  /** Driver options for agent `i`: its namespace, its underlay device and address, its external device. */
  agentOptions(i: number): { netNamespace: string; underlayDevice: string; underlayAddress: string; externalDevice: string; externalRoute: string };
  /** Kills the dnsmasqs of the agents' state dirs and deletes every namespace and device made for the test. */
  destroy(stateDirs: string[]): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const quietly = (f: () => unknown) => {
  try {
    f();
  } catch {
    /* already gone */
  }
};

export function createUnderlay(agents: number): TestUnderlay {
  const tag = randomBytes(3).toString('hex');
  const ns = `stu-${tag}`;
  const made: string[] = [];
  ip('netns', 'add', ns);
  made.push(ns);
  ip('-n', ns, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0');
  ip('-n', ns, 'link', 'set', 'br0', 'up');
  const ext = `ste-${tag}`;
  ip('netns', 'add', ext);
  made.push(ext);
  ip('-n', ext, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', ext, 'addr', 'add', `${EXTERNAL_HOST}/24`, 'dev', 'br0');
  ip('-n', ext, 'link', 'set', 'br0', 'up');
  for (let i = 0; i < agents; i++) {
    for (const [host, peer, where] of [[`su${tag}${i}`, `sp${tag}${i}`, ns], [`se${tag}${i}`, `sx${tag}${i}`, ext]] as const) {
      ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
      ip('link', 'set', peer, 'netns', where);
      ip('-n', where, 'link', 'set', peer, 'master', 'br0', 'up');
    }
  }
  return {
    tag,
    externalNs: ext,
    agentOptions: (i) => ({
      netNamespace: `sta-${tag}-${i}`, underlayDevice: `su${tag}${i}`, underlayAddress: `192.168.250.${i + 1}/24`,
      externalDevice: `se${tag}${i}`, externalRoute: EXTERNAL_CIDR,
    }),
    destroy(stateDirs) {
      for (const dir of stateDirs) {
        let out = '';
        quietly(() => (out = execFileSync('pgrep', ['-f', `dnsmasq.*${dir}`]).toString()));
        for (const pid of out.split('\n').filter(Boolean)) quietly(() => process.kill(Number(pid), 'SIGKILL'));
      }
      for (let i = 0; i < agents; i++) {
        quietly(() => ip('netns', 'del', `sta-${tag}-${i}`));
        quietly(() => ip('netns', 'del', `sta-${tag}-${i}-r`));
        quietly(() => ip('link', 'del', `su${tag}${i}`));
        quietly(() => ip('link', 'del', `se${tag}${i}`));
      }
      for (const n of made) quietly(() => ip('netns', 'del', n));
    },
  };
}

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * The network a QEMU networking test lays between its agents: an "underlay" namespace with a bridge
 * (multicast snooping off, so the VXLAN group floods to every host) and one veth pair per agent, whose
 * host-side end the agent moves into its own namespace at start. Everything carries a random tag, and
 * `destroy` removes the namespaces (the agents' too) and what runs in them, whatever the test did.
 */
export interface TestUnderlay {
  tag: string;
  /** Driver options for agent `i`: its namespace, its underlay device and address. */
  agentOptions(i: number): { netNamespace: string; underlayDevice: string; underlayAddress: string };
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
  for (let i = 0; i < agents; i++) {
    ip('link', 'add', `su${tag}${i}`, 'type', 'veth', 'peer', 'name', `sp${tag}${i}`);
    ip('link', 'set', `sp${tag}${i}`, 'netns', ns);
    ip('-n', ns, 'link', 'set', `sp${tag}${i}`, 'master', 'br0', 'up');
  }
  return {
    tag,
    agentOptions: (i) => ({ netNamespace: `sta-${tag}-${i}`, underlayDevice: `su${tag}${i}`, underlayAddress: `192.168.250.${i + 1}/24` }),
    destroy(stateDirs) {
      for (const dir of stateDirs) {
        let out = '';
        quietly(() => (out = execFileSync('pgrep', ['-f', `dnsmasq.*${dir}`]).toString()));
        for (const pid of out.split('\n').filter(Boolean)) quietly(() => process.kill(Number(pid), 'SIGKILL'));
      }
      for (let i = 0; i < agents; i++) {
        quietly(() => ip('netns', 'del', `sta-${tag}-${i}`));
        quietly(() => ip('link', 'del', `su${tag}${i}`));
      }
      for (const n of made) quietly(() => ip('netns', 'del', n));
    },
  };
}

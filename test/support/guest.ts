import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * The test guest: the Debian cloud kernel and a busybox-static initramfs built from the host's packages
 * into a cache directory. Its /init prints markers the tests read on the serial console:
 *   STRATUS-BOOT-OK              once the virtio modules are loaded
 *   STRATUS-HEARTBEAT <n>        every second, n counting from 1 since boot (a restored VM continues)
 *   STRATUS-BLOCK vda,vdb        whenever the set of virtio disks changes ("-" for none)
 *   STRATUS-POWERDOWN            before it powers off on the ACPI power button
 * With `stratus.burn` on its kernel command line it also spins a busy loop (a guest burning CPU).
 *   STRATUS-VOLUME vdb WROTE m   a newly plugged volume (a disk with a serial) was blank: marker m written to it
 *   STRATUS-VOLUME vdb HOLDS m   a newly plugged volume already held marker m (written by some guest before)
 *   STRATUS-VOLUME vdb READS m   every 5 s, each volume's marker read again from the device (page cache dropped
 *                                first), so a guest that moved shows it still reaches the same bytes
 *   STRATUS-SIZE <kB> <cpus>     once after boot: MemTotal and the online CPUs, as the guest sees them
 *   STRATUS-NET eth0 <ip>/<len>  its NIC got an address by DHCP (only with a NIC)
 *   STRATUS-PING <round> <ip> OK <ms>|FAIL  then, round after round, one ping to each of the first six
 *                                host addresses of its subnet but its own (a test network is a /29: all
 *                                of them), with the round trip the guest measured
 * With a NIC it also listens on each of TCP_PORTS, answering every connection with TCP_ANSWER (busybox
 * nc), so a test can tell a port its security group drops (no answer at all) from one it admits.
 *   STRATUS-DISK vda WROTE m     once after boot, on a boot disk (no serial) of more than 769 MiB: its sector at
 *                                768 MiB (past the 504 MiB FAT of the image disk) was blank, marker m written there
 *   STRATUS-DISK vda HOLDS m     the same sector already held marker m: the disk is a copy of one that had it
 */

export const BOOT_MARKER = 'STRATUS-BOOT-OK';
export const HEARTBEAT = /STRATUS-HEARTBEAT (\d+)/g;
export const GUEST_CMDLINE = 'console=ttyS0 quiet panic=-1';
/** The guest's TCP listeners: both edges of a range 8000-8009 and the ports just outside it, and one more. */
export const TCP_PORTS = [7999, 8000, 8009, 8010, 9000] as const;
export const TCP_ANSWER = 'STRATUS-TCP-ANSWER';

const INSTALL_HINT = 'apt-get install linux-image-cloud-amd64 busybox-static qemu-system-x86 qemu-utils';

export interface TestGuest {
  kernelPath: string;
  initrdPath: string;
  cmdline: string;
  /** A UEFI-bootable disk (FAT with the kernel, the initramfs and a startup.nsh), for `image` boots. */
  diskImagePath: string;
}

/** Modules the guest loads, in this order (modules.dep confirms each one's dependencies come first). */
const MODULES = [
  'virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk', 'failover', 'net_failover', 'virtio_net', 'button', 'evdev',
];

const INIT = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${MODULES.join(' ')}; do insmod /lib/modules/$m.ko 2>/dev/null; done
exec >/dev/console 2>&1
# ctrl-alt-del: the kernel's default (C_A_D on, nobody turned it off) restarts at once, a guest-made reboot.
# The ACPI power button is an input device once 'button' and 'evdev' are loaded: any event means power off.
for ev in /sys/class/input/event*; do
  if grep -q "Power Button" "$ev/device/name" 2>/dev/null; then
    ( dd if=/dev/input/\${ev##*/} bs=24 count=1 >/dev/null 2>&1; echo STRATUS-POWERDOWN; sync; poweroff -f ) &
  fi
done
# Printed only once the power button is watched (dd given a moment to open it), so "booted" means "stop works".
sleep 0.3
echo ${BOOT_MARKER}
# stratus.burn on the kernel command line: a guest that keeps its vCPU busy, for the CPU meters.
grep -q stratus.burn /proc/cmdline && ( while :; do :; done ) &
# A NIC: an address by DHCP, then pings to the neighbours, one round after another.
pingPeers() {
  read ip mask < /tmp/net
  set -- $(echo $ip | tr . ' ')
  base=$(( (($1<<24) + ($2<<16) + ($3<<8) + $4) & ~((1<<(32-mask))-1) ))
  r=0
  while :; do
    r=$((r+1))
    for k in 1 2 3 4 5 6; do
      h=$((base+k))
      t="$(( (h>>24)&255 )).$(( (h>>16)&255 )).$(( (h>>8)&255 )).$(( h&255 ))"
      [ "$t" = "$ip" ] && continue
      if out=$(ping -c 1 -W 1 $t 2>/dev/null); then s="OK $(echo "$out" | sed -n 's|.*= [0-9.]*/\\([0-9.]*\\)/.*|\\1|p')"; else s=FAIL; fi
      echo "STRATUS-PING $r $t $s"
    done
    sleep 1
  done
}
if [ -e /sys/class/net/eth0 ]; then
  ip link set lo up
  ip link set eth0 up
  ( until udhcpc -i eth0 -s /bin/dhcp.sh -q -n -t 5 -T 2 >/dev/null 2>&1; do sleep 1; done; pingPeers ) &
  for p in ${TCP_PORTS.join(' ')}; do nc -ll -p $p -e /bin/tcp-answer.sh >/dev/null 2>&1 & done
fi
# Volumes carry a serial (the boot disk has none): the first look at one reads its marker or writes one.
markVolume() {
  s=$(cat /sys/block/$1/serial 2>/dev/null)
  [ -n "$s" ] || return 0
  m=$(dd if=/dev/$1 bs=64 count=1 2>/dev/null | tr -d '\\000' | head -c 40)
  case "$m" in
    STRATUS-MARK-*) echo "STRATUS-VOLUME $1 HOLDS $m" ;;
    *) m="STRATUS-MARK-$(cut -c1-8 /proc/sys/kernel/random/uuid)"
       printf '%s' "$m" | dd of=/dev/$1 bs=64 count=1 conv=sync,fsync 2>/dev/null; sync
       echo "STRATUS-VOLUME $1 WROTE $m" ;;
  esac
}
# The boot disk's own marker, at a sector no filesystem of the image disk uses: a snapshot of the disk carries it.
DISK_MARK_SECTOR=1572864
markDisk() {
  [ -z "$(cat /sys/block/$1/serial 2>/dev/null)" ] || return 0
  [ "$(cat /sys/block/$1/size 2>/dev/null || echo 0)" -gt $((DISK_MARK_SECTOR + 2048)) ] || return 0
  m=$(dd if=/dev/$1 bs=512 skip=$DISK_MARK_SECTOR count=1 2>/dev/null | tr -d '\\000' | head -c 40)
  case "$m" in
    STRATUS-MARK-*) echo "STRATUS-DISK $1 HOLDS $m" ;;
    *) m="STRATUS-MARK-$(cut -c1-8 /proc/sys/kernel/random/uuid)"
       printf '%s' "$m" | dd of=/dev/$1 bs=512 seek=$DISK_MARK_SECTOR count=1 conv=sync,fsync 2>/dev/null; sync
       echo "STRATUS-DISK $1 WROTE $m" ;;
  esac
}
[ -e /dev/vda ] && markDisk vda
n=0; last=; seen=
echo "STRATUS-SIZE $(sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo) $(ls /sys/devices/system/cpu | grep -c '^cpu[0-9]')"
while true; do
  n=$((n+1))
  cur=$(ls /sys/block 2>/dev/null | grep '^vd')
  for d in $cur; do case " $seen " in *" $d "*) ;; *) markVolume $d ;; esac; done
  seen=$(echo $cur)
  if [ $((n % 5)) = 0 ]; then
    echo 3 > /proc/sys/vm/drop_caches
    for d in $cur; do
      [ -n "$(cat /sys/block/$d/serial 2>/dev/null)" ] || continue
      echo "STRATUS-VOLUME $d READS $(dd if=/dev/$d bs=64 count=1 2>/dev/null | tr -d '\\000' | head -c 40)"
    done
  fi
  blk=$(ls /sys/block 2>/dev/null | grep '^vd' | tr '\\n' ',' | sed 's/,$//')
  [ -z "$blk" ] && blk=-
  [ "$blk" != "$last" ] && echo "STRATUS-BLOCK $blk" && last=$blk
  echo "STRATUS-HEARTBEAT $n"
  sleep 1
done
`;

/** udhcpc's script: configure the lease it got and say so on the console. */
const DHCP_SCRIPT = `#!/bin/sh
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
ip addr flush dev $interface
ip addr add $ip/$mask dev $interface
[ -n "$mtu" ] && ip link set dev $interface mtu $mtu
for r in $router; do ip route add default via $r dev $interface; break; done
echo "$ip $mask" > /tmp/net
echo "STRATUS-NET $interface $ip/$mask" > /dev/console
`;

/** What each TCP listener says to a connection, then closes it. */
const TCP_ANSWER_SCRIPT = `#!/bin/sh
echo ${TCP_ANSWER}
`;

function fail(what: string): never {
  throw new Error(`test guest: ${what}; install the packages with: ${INSTALL_HINT}`);
}

function findKernel(): { version: string; kernelPath: string } {
  const boot = existsSync('/boot') ? readdirSync('/boot') : [];
  const kernels = boot.filter((f) => /^vmlinuz-.*-cloud-amd64$/.test(f)).sort();
  const file = kernels.at(-1) ?? fail('no /boot/vmlinuz-*-cloud-amd64');
  const version = file.slice('vmlinuz-'.length);
  if (!existsSync(join('/lib/modules', version, 'modules.dep'))) fail(`no /lib/modules/${version}/modules.dep`);
  return { version, kernelPath: join('/boot', file) };
}

/** Module name → its file in /lib/modules/<version>, from modules.dep, checking dependencies load first. */
function moduleFiles(version: string): Map<string, string> {
  const dep = readFileSync(join('/lib/modules', version, 'modules.dep'), 'utf8');
  const byName = new Map<string, { file: string; deps: string[] }>();
  const nameOf = (p: string) => p.split('/').at(-1)!.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
  for (const line of dep.split('\n')) {
    const [file, rest] = line.split(':');
    if (!file || rest === undefined) continue;
    byName.set(nameOf(file), { file, deps: rest.trim().split(/\s+/).filter(Boolean).map(nameOf) });
  }
  const out = new Map<string, string>();
  for (const m of MODULES) {
    const e = byName.get(m) ?? fail(`kernel ${version} has no module ${m}`);
    for (const d of e.deps) if (!out.has(d)) throw new Error(`test guest: module ${m} needs ${d}, which is not loaded before it`);
    out.set(m, e.file);
  }
  return out;
}

/** Module bytes, decompressed: busybox insmod in the guest takes plain .ko files. */
function readModule(path: string): Buffer {
  if (path.endsWith('.ko')) return readFileSync(path);
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : 'gzip';
  return execFileSync(tool, ['-dc', path], { maxBuffer: 64 << 20 });
}

interface CpioEntry { name: string; mode: number; data?: Buffer; rdev?: [number, number] }

/** A cpio "newc" archive, written here so building needs neither root (for /dev/console) nor cpio(1). */
function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  const push = (e: CpioEntry) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0');
    const fields = [ino++, e.mode, 0, 0, 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = Buffer.from('070701' + fields.map(hex).join(''));
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  };
  entries.forEach(push);
  push({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}

function buildInitramfs(version: string): Buffer {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) fail('no /bin/busybox');
  // The guest has no libc: only the static build runs there.
  if (!existsSync('/usr/share/doc/busybox-static')) fail('busybox-static is not installed');
  const dir = 0o040755;
  const file = 0o100755;
  const entries: CpioEntry[] = ['bin', 'dev', 'proc', 'sys', 'lib', 'lib/modules', 'tmp'].map((name) => ({ name, mode: dir }));
  entries.push({ name: 'dev/console', mode: 0o020600, rdev: [5, 1] });
  entries.push({ name: 'bin/busybox', mode: file, data: readFileSync(busybox) });
  const applets = ['sh', 'mount', 'insmod', 'echo', 'ls', 'grep', 'tr', 'sed', 'sleep', 'dd', 'sync', 'poweroff', 'reboot', 'cat', 'ip', 'udhcpc', 'ping', 'nc'];
  for (const a of applets) entries.push({ name: `bin/${a}`, mode: 0o120777, data: Buffer.from('busybox') });
  for (const [m, rel] of moduleFiles(version)) {
    entries.push({ name: `lib/modules/${m}.ko`, mode: 0o100644, data: readModule(join('/lib/modules', version, rel)) });
  }
  entries.push({ name: 'init', mode: file, data: Buffer.from(INIT) });
  entries.push({ name: 'bin/dhcp.sh', mode: file, data: Buffer.from(DHCP_SCRIPT) });
  entries.push({ name: 'bin/tcp-answer.sh', mode: file, data: Buffer.from(TCP_ANSWER_SCRIPT) });
  return gzipSync(cpioNewc(entries), { level: 6 });
}

/** A FAT disk that OVMF's shell boots through startup.nsh, made with QEMU's own vvfat driver (no mkfs, no mount). */
function buildBootDisk(dir: string, kernelPath: string, initrdPath: string): string {
  const fat = join(dir, 'fat');
  rmSync(fat, { recursive: true, force: true });
  mkdirSync(fat);
  writeFileSync(join(fat, 'vmlinuz.efi'), readFileSync(kernelPath));
  writeFileSync(join(fat, 'initrd.gz'), readFileSync(initrdPath));
  writeFileSync(join(fat, 'startup.nsh'), `fs0:\r\nvmlinuz.efi initrd=\\initrd.gz ${GUEST_CMDLINE}\r\n`);
  const out = join(dir, 'boot-disk.qcow2');
  execFileSync('qemu-img', ['convert', '-f', 'vvfat', '-O', 'qcow2', `fat:${fat}`, out + '.tmp']);
  renameSync(out + '.tmp', out);
  rmSync(fat, { recursive: true, force: true });
  return out;
}

/** Builds the guest once per kernel/busybox/script combination; later calls return the cached files. */
export function buildTestGuest(cacheRoot = join(homedir(), '.cache', 'stratus', 'guest')): TestGuest {
  const { version, kernelPath } = findKernel();
  for (const bin of ['qemu-system-x86_64', 'qemu-img']) {
    try {
      execFileSync('which', [bin]);
    } catch {
      fail(`${bin} not on PATH`);
    }
  }
  const key = createHash('sha256')
    .update([version, statSync(kernelPath).mtimeMs, statSync('/bin/busybox').size, INIT, DHCP_SCRIPT, TCP_ANSWER_SCRIPT, MODULES.join(',')].join('|'))
    .digest('hex')
    .slice(0, 16);
  const dir = join(cacheRoot, key);
  const initrdPath = join(dir, 'initrd.gz');
  const diskImagePath = join(dir, 'boot-disk.qcow2');
  if (!existsSync(initrdPath) || !existsSync(diskImagePath)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(initrdPath + '.tmp', buildInitramfs(version));
    renameSync(initrdPath + '.tmp', initrdPath);
    buildBootDisk(dir, kernelPath, initrdPath);
  }
  return { kernelPath, initrdPath, cmdline: GUEST_CMDLINE, diskImagePath };
}

/** Heartbeat counters in a console text, in order. */
export function heartbeats(text: string): number[] {
  return [...text.matchAll(HEARTBEAT)].map((m) => Number(m[1]));
}

// ---- watching the guest's console, and cleaning up after QEMU tests ----
/**
 * What the QEMU tests need from a host, whether it is the driver called directly or a host agent over SSH,
 * and the console-watching helpers they share.
 */
export interface ConsoleSource {
  consoleLog(name: string, opts: { lines: number }): Promise<{ text: string }>;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

export async function consoleText(host: ConsoleSource, name: string): Promise<string> {
  return (await host.consoleLog(name, { lines: 10_000 })).text;
}

export const bootCount = (text: string) => text.split(BOOT_MARKER).length - 1;
export const lastHeartbeat = (text: string) => heartbeats(text).at(-1) ?? 0;
/** The guest's MemTotal (kB) and CPU count from its newest STRATUS-SIZE line. */
export const guestSize = (text: string) => {
  const m = [...text.matchAll(/STRATUS-SIZE (\d+) (\d+)/g)].at(-1);
  return m ? { memKb: Number(m[1]), cpus: Number(m[2]) } : undefined;
};
/** The address the guest's NIC got by DHCP, `a.b.c.d`. */
export const guestAddress = (text: string) => [...text.matchAll(/STRATUS-NET \S+ ([\d.]+)\/\d+/g)].at(-1)?.[1];
export interface PingResult { round: number; target: string; ok: boolean; rttMs?: number }
export const pingResults = (text: string): PingResult[] =>
  [...text.matchAll(/STRATUS-PING (\d+) ([\d.]+) (OK|FAIL)(?: ([\d.]+))?/g)].map((m) => ({
    round: Number(m[1]), target: m[2]!, ok: m[3] === 'OK', ...(m[4] ? { rttMs: Number(m[4]) } : {}),
  }));
export const lastPingRound = (text: string) => pingResults(text).at(-1)?.round ?? 0;

/** The guest's first ping to `target` in a round after `afterRound`: a round that began after whatever the test changed. */
export function nextPing(host: ConsoleSource, name: string, target: string, afterRound: number, timeoutMs = 60_000) {
  return waitFor(`a ping from ${name} to ${target} after round ${afterRound}`, timeoutMs, async () =>
    pingResults(await consoleText(host, name)).find((p) => p.target === target && p.round > afterRound),
  );
}

export const lastBlockLine = (text: string) => [...text.matchAll(/STRATUS-BLOCK (\S+)/g)].at(-1)?.[1];

/** Waits until the console shows `count` boot markers in all. */
export function waitBoots(host: ConsoleSource, name: string, count: number, timeoutMs = 60_000) {
  return waitFor(`boot marker #${count} of ${name}`, timeoutMs, async () => (bootCount(await consoleText(host, name)) >= count ? true : undefined));
}

/** Waits for a heartbeat greater than `after` and returns it. */
export function waitHeartbeat(host: ConsoleSource, name: string, after: number, timeoutMs = 30_000) {
  return waitFor(`a heartbeat after ${after} from ${name}`, timeoutMs, async () => {
    const n = lastHeartbeat(await consoleText(host, name));
    return n > after ? n : undefined;
  });
}

export function waitBlock(host: ConsoleSource, name: string, devices: string, timeoutMs = 30_000) {
  return waitFor(`STRATUS-BLOCK ${devices} from ${name}`, timeoutMs, async () =>
    lastBlockLine(await consoleText(host, name)) === devices ? true : undefined,
  );
}

/** Pids of QEMU processes whose command line mentions `dir` (a test's state dir). */
export function qemuPidsUnder(dir: string): number[] {
  let out = '';
  try {
    out = execFileSync('pgrep', ['-f', `qemu-system-x86_64.*${dir}`]).toString();
  } catch {
    return [];
  }
  return out.split('\n').filter(Boolean).map(Number);
}

/** afterAll: no test leaves a QEMU behind, whatever failed. Only processes under the test's own dirs. */
export function killQemusUnder(...dirs: string[]): void {
  for (const dir of dirs) {
    for (const pid of qemuPidsUnder(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

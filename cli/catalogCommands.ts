import type { Command } from 'commander';
import { connect } from './apiClient.js';
import { printRows } from './tables.js';

interface Flavor { id: string; name: string; vcpus: number; memoryMb: number; diskGb: number }
interface Image { id: string; name: string; format: string; sizeBytes: number; status: string; checksum: string | null }
interface Resources { vcpus: number; memoryMb: number; diskGb: number }
interface Host { id: string; name: string; address: string; port: number; state: string; hypervisor: string; capacity: Resources; allocated: Resources }

const used = (a: Resources, c: Resources) => `${a.vcpus}/${c.vcpus} vCPU, ${a.memoryMb}/${c.memoryMb} MB, ${a.diskGb}/${c.diskGb} GB`;

/** `stratus flavor list`, `stratus image list`, `stratus host list`: what a boot can be made of and where it lands. */
export function register(program: Command) {
  program
    .command('flavor')
    .description('flavors (instance sizes)')
    .command('list')
    .option('--json', 'print JSON for scripts')
    .action(async (options: { json?: boolean }) => {
      const { flavors } = await (await connect()).request<{ flavors: Flavor[] }>('{ flavors { id name vcpus memoryMb diskGb } }');
      printRows(flavors, [
        { header: 'ID', cell: (f) => f.id },
        { header: 'NAME', cell: (f) => f.name },
        { header: 'VCPUS', cell: (f) => f.vcpus },
        { header: 'MEMORY_MB', cell: (f) => f.memoryMb },
        { header: 'DISK_GB', cell: (f) => f.diskGb },
      ], options);
    });

  program
    .command('image')
    .description('images instances boot from')
    .command('list')
    .option('--json', 'print JSON for scripts')
    .action(async (options: { json?: boolean }) => {
      const { images } = await (await connect()).request<{ images: Image[] }>('{ images { id name format sizeBytes status checksum } }');
      printRows(images, [
        { header: 'ID', cell: (i) => i.id },
        { header: 'NAME', cell: (i) => i.name },
        { header: 'FORMAT', cell: (i) => i.format },
        { header: 'SIZE_BYTES', cell: (i) => i.sizeBytes },
        { header: 'STATUS', cell: (i) => i.status },
      ], options);
    });

  program
    .command('host')
    .description('hypervisor hosts (admin)')
    .command('list')
    .option('--json', 'print JSON for scripts')
    .action(async (options: { json?: boolean }) => {
      const { hosts } = await (await connect()).request<{ hosts: Host[] }>(
        '{ hosts { id name address port state hypervisor capacity { vcpus memoryMb diskGb } allocated { vcpus memoryMb diskGb } } }',
      );
      printRows(hosts, [
        { header: 'ID', cell: (h) => h.id },
        { header: 'NAME', cell: (h) => h.name },
        { header: 'ADDRESS', cell: (h) => `${h.address}:${h.port}` },
        { header: 'STATE', cell: (h) => h.state },
        { header: 'HYPERVISOR', cell: (h) => h.hypervisor },
        { header: 'ALLOCATED', cell: (h) => used(h.allocated, h.capacity) },
      ], options);
    });
}

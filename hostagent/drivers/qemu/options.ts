import { z } from 'zod';

/** The qemu driver's `--driver-option key=value` settings, all strings on the wire. */
const int = (def: number) => z.coerce.number().int().min(0).default(def);

export const QemuOptions = z.object({
  /** kvm, tcg, or auto: probe KVM once at init and fall back to TCG when it fails or hangs. */
  accel: z.enum(['kvm', 'tcg', 'auto']).default('auto'),
  machine: z.enum(['q35', 'microvm']).default('q35'),
  /** pcie-root-ports per VM (q35), so the most volumes one VM can hold. */
  hotplugSlots: int(4),
  /** How long a soft stop waits for the guest to power off after ACPI power-down before `quit`. */
  stopTimeoutMs: int(30_000),
  /** How long a soft reboot waits for the guest to reset after ctrl-alt-del before `system_reset`. */
  rebootTimeoutMs: int(30_000),
  detachTimeoutMs: int(30_000),
  probeTimeoutMs: int(3000),
  probeKernel: z.string().optional(),
  /** `vcpus,memoryMb,diskGb`; by default read from /proc and the state dir's file system. */
  capacity: z.string().optional(),
  /** Where a migration destination listens, and the address the source is told to send to. */
  migrationListen: z.string().default('127.0.0.1'),
  migrationAdvertise: z.string().optional(),
  uefiFirmware: z.string().optional(),
  /** The shared storage pool (the same path on every host); <stateDir>/volumes when unset. */
  storagePool: z.string().optional(),
  /**
   * A kernel and initramfs for VMs whose spec names no boot source: what the controller sends until images
   * reach the hosts. Both or neither.
   */
  bootKernel: z.string().optional(),
  bootInitrd: z.string().optional(),
  bootCmdline: z.string().max(4096).default('console=ttyS0'),
});
export type QemuOptions = z.infer<typeof QemuOptions>;

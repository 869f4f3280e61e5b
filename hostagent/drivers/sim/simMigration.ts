import { createServer, connect, type Server } from 'node:net';
import { VmInfo } from '../../driver.js';

/**
 * Sim live migration moves the VM record over a real TCP connection, so two sim agents exercise the
 * same receive-then-send choreography as qemu: the destination listens, the source connects and
 * sends, the destination acknowledges, and only then does the source forget the VM.
 */
export function listenForMigration(host: string, onVm: (vm: VmInfo) => Promise<void>): Promise<{ server: Server; port: number }> {
  const server = createServer((sock) => {
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      text += d;
      if (!text.endsWith('\n')) return;
      const vm = VmInfo.safeParse(JSON.parse(text));
      if (!vm.success) return sock.end('ERR bad vm\n');
      onVm(vm.data).then(
        () => {
          sock.end('OK\n');
          server.close();
        },
        (e: unknown) => sock.end(`ERR ${e instanceof Error ? e.message : String(e)}\n`),
      );
    });
    sock.on('error', () => undefined);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

export function sendMigration(target: { host: string; port: number }, vm: VmInfo): Promise<number> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(vm) + '\n';
    const sock = connect(target.port, target.host, () => sock.write(payload));
    let reply = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (reply += d));
    sock.on('error', reject);
    sock.on('close', () => (reply.startsWith('OK') ? resolve(Buffer.byteLength(payload)) : reject(new Error(reply.trim() || 'migration connection closed'))));
  });
}

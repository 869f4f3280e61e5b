import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';

/** An endpoint nobody sent to is closed after this long, so a failed migration leaves no listener behind. */
const UNCLAIMED_MS = 10 * 60_000;

/**
 * A stopped VM's disk moved between two agents (a cold migration): the target listens for one connection
 * and writes what arrives next to `dest`, renaming it into place only once the source has sent all of it
 * and then acknowledging, so a transfer cut short never replaces the target's disk with half of one.
 * `beforeAck` runs once the file is in place and before the acknowledgement (the qemu driver grows it there).
 */
export function receiveFile(host: string, dest: string, beforeAck: () => Promise<void> = async () => {}): Promise<{ port: number; done: Promise<number> }> {
  let settle: { resolve(n: number): void; reject(e: Error): void } = { resolve: () => {}, reject: () => {} };
  const done = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => undefined);
  const tmp = `${dest}.incoming`;
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    server.close();
    clearTimeout(unclaimed);
    // The size comes first, on a line of its own: a connection that ends early is told apart from a whole file.
    let expected: number | undefined;
    let header = Buffer.alloc(0);
    let bytes = 0;
    const out = createWriteStream(tmp);
    const fail = (e: Error) => {
      rmSync(tmp, { force: true });
      sock.destroy();
      settle.reject(e);
    };
    sock.on('data', (d: Buffer) => {
      if (expected === undefined) {
        header = Buffer.concat([header, d]);
        const nl = header.indexOf(10);
        if (nl < 0) return;
        expected = Number(header.subarray(0, nl).toString());
        d = header.subarray(nl + 1);
      }
      bytes += d.length;
      if (!out.write(d)) {
        sock.pause();
        out.once('drain', () => sock.resume());
      }
    });
    sock.on('end', () => out.end());
    sock.on('error', fail);
    out.on('error', fail);
    out.on('finish', () => {
      if (bytes !== expected) return fail(new Error(`disk transfer cut short: ${bytes} of ${expected ?? '?'} bytes`));
      renameSync(tmp, dest);
      beforeAck().then(
        () => {
          sock.end('OK\n');
          settle.resolve(bytes);
        },
        (e: Error) => {
          sock.end(`ERR ${e.message}\n`);
          settle.reject(e);
        },
      );
    });
  });
  const unclaimed = setTimeout(() => server.close(), UNCLAIMED_MS);
  unclaimed.unref();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve({ port: (server.address() as { port: number }).port, done }));
  });
}

/** Sends `path` to a `receiveFile` endpoint; resolves with the bytes sent once the target has acknowledged them. */
export function sendFile(path: string, target: { host: string; port: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let reply = '';
    const sock = connect(target.port, target.host, () => {
      sock.write(`${statSync(path).size}\n`);
      const file = createReadStream(path);
      file.on('data', (d) => (sent += d.length));
      file.on('error', (e) => sock.destroy(e));
      file.pipe(sock);
    });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (reply += d));
    sock.on('error', reject);
    sock.on('close', () => (reply.startsWith('OK') ? resolve(sent) : reject(new Error(reply.trim() || 'disk transfer connection closed'))));
  });
}

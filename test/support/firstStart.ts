// Run as a child process by firstStartFiles.test.ts: waits until the go file exists (so that all
// children start their first-start work within microseconds of each other), then makes or reads the
// file named by argv and prints what this process ended up with.
import { existsSync } from 'node:fs';
import { loadOrCreateHostKey } from '../../hostagent/hostKey.js';
import { loadOrCreateAdminToken } from '../../server/adminToken.js';
import { loadOrCreateControllerKey } from '../../server/controllerKey.js';

const [kind, dir, go] = process.argv.slice(2) as [string, string, string];
process.stdout.write('ready\n');
while (!existsSync(go)) {
  // spin: a timer would add milliseconds of skew between the children
}
let result: unknown;
if (kind === 'host-key') result = (await loadOrCreateHostKey(dir)).privateKey;
else if (kind === 'controller-key') result = loadOrCreateControllerKey(`${dir}/controller_ed25519`).privateKey;
else if (kind === 'admin-token') result = loadOrCreateAdminToken(dir);
else throw new Error(`unknown kind ${kind}`);
process.stdout.write(JSON.stringify(result));

// A worker role in its own process, configured from the environment (DATABASE_URL, TEMPORAL_ADDRESS,
// STRATUS_TASK_QUEUE, STRATUS_SSH_KEY), so a test can SIGKILL it the way a crash would.
import { runWorkerProcess } from '../../server/worker.js';

await runWorkerProcess();
process.exit(0);

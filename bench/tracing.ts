/**
 * What tracing costs a boot: bench/boot.ts run twice as child processes in this run, once with
 * tracing off (no OTEL_* variables: the default) and once exporting every span over OTLP/HTTP to a
 * local receiver started here. tracingRatio = traced c32BootsPerSec / untraced c32BootsPerSec
 * (target >= 0.9). Each child starts its own PostgreSQL, Temporal, worker and sim agent, so the two
 * differ only in tracing; the order alternates (off, on, on, off) so drift of a busy machine cancels.
 *
 *   npm run bench:tracing            figures
 *   npm run bench:tracing -- --json  exactly one JSON line on stdout
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startOtlpReceiver } from '../test/support/otlpReceiver.js';

const json = process.argv.includes('--json');
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const say = (m: string) => (json ? process.stderr.write(m + '\n') : console.log(m));

interface BootFigures {
  c32BootsPerSec: number;
  c1P50Ms: number;
}

function bootBench(env: NodeJS.ProcessEnv): Promise<BootFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/boot.ts', '--json'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`bench/boot.ts exited ${code}: ${out}`));
      resolve(JSON.parse(line) as BootFigures);
    });
  });
}

const receiver = await startOtlpReceiver();
const base: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_'))),
  BENCH_C1_BOOTS: process.env.BENCH_C1_BOOTS ?? '10',
  BENCH_C32_BOOTS: process.env.BENCH_C32_BOOTS ?? '160',
};
const traced = { ...base, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
const runs: Array<{ tracing: boolean; figures: BootFigures }> = [];
for (const tracing of [false, true, true, false]) {
  say(`bench/boot.ts with tracing ${tracing ? 'on' : 'off'}...`);
  runs.push({ tracing, figures: await bootBench(tracing ? traced : base) });
}
await receiver.close();

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const off = mean(runs.filter((r) => !r.tracing).map((r) => r.figures.c32BootsPerSec));
const on = mean(runs.filter((r) => r.tracing).map((r) => r.figures.c32BootsPerSec));
const result = {
  untracedBootsPerSec: round(off, 1),
  tracedBootsPerSec: round(on, 1),
  tracingRatio: round(on / off),
  untracedC1P50Ms: round(mean(runs.filter((r) => !r.tracing).map((r) => r.figures.c1P50Ms)), 1),
  tracedC1P50Ms: round(mean(runs.filter((r) => r.tracing).map((r) => r.figures.c1P50Ms)), 1),
  spansReceived: receiver.spans.length,
};
if (json) console.log(JSON.stringify(result));
else {
  say(`boots/s at concurrency 32: ${result.untracedBootsPerSec} untraced, ${result.tracedBootsPerSec} traced`);
  say(`tracingRatio ${result.tracingRatio} (target >= 0.9); ${result.spansReceived} spans received`);
}
process.exit(0);

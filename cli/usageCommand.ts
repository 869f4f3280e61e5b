import type { Command } from 'commander';

const USAGE_QUERY = `query($p: ID, $from: DateTime!, $to: DateTime!) {
  usage(projectId: $p, from: $from, to: $to) {
    projectId from to cost currency
    totals { usageType quantity unit cost }
    records { resourceId resourceType usageType quantity unit start end rate cost description }
  }
}`;

interface Report {
  projectId: string;
  from: string;
  to: string;
  cost: number;
  currency: string;
  totals: { usageType: string; quantity: number; unit: string; cost: number }[];
  records: { resourceId: string; resourceType: string; usageType: string; quantity: number; unit: string; start: string; end: string; rate: number | null; cost: number | null; description: string | null }[];
}

const CSV_COLUMNS = ['start', 'end', 'resourceType', 'resourceId', 'usageType', 'quantity', 'unit', 'rate', 'cost'] as const;

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled. */
const csvField = (v: unknown) => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function usageCsv(report: Report): string {
  return [CSV_COLUMNS.join(','), ...report.records.map((r) => CSV_COLUMNS.map((c) => csvField(r[c])).join(','))].join('\n') + '\n';
}

function usageTable(report: Report): string {
  const lines = [`usage of project ${report.projectId} from ${report.from} to ${report.to}`, ''];
  for (const t of report.totals) {
    lines.push(`${t.usageType.padEnd(16)} ${t.quantity.toFixed(4).padStart(14)} ${t.unit.padEnd(9)} ${t.cost.toFixed(4).padStart(12)} ${report.currency}`);
  }
  lines.push(`${'total'.padEnd(16)} ${''.padStart(14)} ${''.padEnd(9)} ${report.cost.toFixed(4).padStart(12)} ${report.currency}`);
  lines.push('', `${report.records.length} records (--csv exports them)`);
  return lines.join('\n') + '\n';
}

/** `stratus usage --project P --from T --to T [--csv|--json]`: a project's priced usage, from the API. */
export function register(program: Command) {
  program
    .command('usage')
    .description("print a project's usage and cost between two times (the API at STRATUS_URL, token STRATUS_TOKEN)")
    .option('--project <id>', "the project (default: the token's own)")
    .requiredOption('--from <time>', 'start, an ISO-8601 time')
    .requiredOption('--to <time>', 'end (exclusive), an ISO-8601 time')
    .option('--csv', 'the records as CSV, one per line')
    .option('--json', 'the whole report as JSON')
    .option('--url <url>', 'the GraphQL endpoint', process.env.STRATUS_URL ?? 'http://127.0.0.1:4000/graphql')
    .option('--token <token>', 'a bearer token', process.env.STRATUS_TOKEN)
    .action(async (o: { project?: string; from: string; to: string; csv?: boolean; json?: boolean; url: string; token?: string }) => {
      if (!o.token) throw new Error('a token is needed: --token or STRATUS_TOKEN');
      const res = await fetch(o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${o.token}` },
        body: JSON.stringify({ query: USAGE_QUERY, variables: { p: o.project ?? null, from: o.from, to: o.to } }),
      });
      const body = (await res.json()) as { data?: { usage: Report | null }; errors?: { message: string; extensions?: { code?: string } }[] };
      if (body.errors?.length) throw new Error(body.errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('; '));
      const report = body.data?.usage;
      if (!report) throw new Error(`NOT_FOUND: no project ${o.project ?? ''} visible to this token`);
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : o.csv ? usageCsv(report) : usageTable(report));
    });
}

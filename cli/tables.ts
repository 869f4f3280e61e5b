/** One column of a table for people: its header and how to read a row's cell. */
export interface Column<R> {
  header: string;
  cell: (row: R) => string | number | boolean | null | undefined;
}

/** Plain aligned columns (Incus's and the OpenStack client's habit), `-` for an empty cell. */
export function renderTable<R>(rows: R[], columns: Column<R>[]): string {
  const cells = rows.map((r) => columns.map((c) => {
    const v = c.cell(r);
    return v === null || v === undefined || v === '' ? '-' : String(v);
  }));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}

/** `key: value` lines for one object shown to a person. */
export function renderFields(fields: Array<[string, string | number | boolean | null | undefined]>): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v === null || v === undefined || v === '' ? '-' : String(v)}`).join('\n');
}

/** What every listing command prints: JSON for scripts, a table for people. */
export function printRows<R>(rows: R[], columns: Column<R>[], options: { json?: boolean }): void {
  if (options.json) console.log(JSON.stringify(rows, null, 2));
  else if (rows.length === 0) console.log('(none)');
  else console.log(renderTable(rows, columns));
}

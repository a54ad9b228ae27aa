/** A closed-loop load generator: `concurrency` workers each send the next request when the last answers. */
export type LoadResult = {
  requests: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
  statuses: Partial<Record<string, number>>;
};

export async function runLoad(options: { concurrency: number; seconds: number; request: () => Promise<Response> }): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Partial<Record<string, number>> = {};
  let errors = 0;
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const res = await options.request();
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status !== 200) errors += 1;
      } catch {
        errors += 1;
        statuses.network = (statuses.network ?? 0) + 1;
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { requests: latencies.length, errors, seconds, perSecond: latencies.length / seconds, p50: pick(0.5), p99: pick(0.99), statuses };
}

export function table(rows: Record<string, string | number>[]): string {
  const columns = Object.keys(rows[0] ?? {});
  const cell = (value: string | number) =>
    typeof value === 'number' ? (Number.isInteger(value) ? String(value) : value.toFixed(2)) : value;
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row[column]).length)));
  const line = (values: string[]) => `| ${values.map((value, i) => value.padEnd(widths[i])).join(' | ')} |`;
  return [
    line(columns),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map((row) => line(columns.map((column) => cell(row[column])))),
  ].join('\n');
}

/** A client-credentials token request (HTTP Basic client authentication), to send again and again. */
export function clientCredentials(
  base: string,
  client: { id: string; secret: string },
  params: Record<string, string>,
): () => Promise<Response> {
  const authorization = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
  const body = new URLSearchParams({ grant_type: 'client_credentials', ...params }).toString();
  return () =>
    fetch(`${base}/token`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body });
}

const OUT_OF_REACH = '1000000/1m';

/**
 * Server settings for a benchmark: the endpoint limits (and `also`, e.g. the login limits) out of
 * reach, so that a run measures capacity rather than refusals; the limiters still count. RATE_LIMIT_*
 * and HASH_* settings in the caller's environment win: `RATE_LIMIT_ENDPOINT_STORE=database npm run bench`.
 */
export function benchLimits(also: string[] = []): Record<string, string> {
  const raised = [
    'RATE_LIMIT_TOKEN_PER_CLIENT',
    'RATE_LIMIT_TOKEN_PER_IP',
    'RATE_LIMIT_INTROSPECTION_PER_CLIENT',
    'RATE_LIMIT_INTROSPECTION_PER_IP',
    ...also,
  ];
  const given = Object.entries(process.env).filter(
    (entry): entry is [string, string] => /^(RATE_LIMIT|HASH)_/.test(entry[0]) && entry[1] !== undefined,
  );
  return { ...Object.fromEntries(raised.map((name) => [name, OUT_OF_REACH])), ...Object.fromEntries(given) };
}

/**
 * The in-process servers running now, by database: a change made by the test (a CLI command,
 * an UPDATE by hand) reaches their caches through the change feed a moment after it commits;
 * `settleServers` waits for that moment instead of a fixed time.
 */
const running = new Set<{ databaseUrl: string; settle(): Promise<void> }>();

export function registerServer(server: { databaseUrl: string; settle(): Promise<void> }): () => void {
  running.add(server);
  return () => running.delete(server);
}

/** Resolves once every in-process server on `databaseUrl` has applied the changes committed so far. */
export async function settleServers(databaseUrl: string | undefined): Promise<void> {
  await Promise.all([...running].filter((server) => server.databaseUrl === databaseUrl).map((server) => server.settle()));
}

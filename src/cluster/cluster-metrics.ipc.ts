import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry, type Registry } from 'prom-client';

const ASK = 'portcullis:cluster-metrics';
const ANSWER = 'portcullis:cluster-metrics-answer';

type Message = { type?: string; id?: string; text?: string; error?: string };

/** What another process sent: anything serialisable, so possibly not an object at all. */
function asMessage(value: unknown): Message | undefined {
  return typeof value === 'object' && value !== null ? value : undefined;
}

/**
 * In a worker: /metrics, wherever the connection landed, answers for the whole machine. The
 * worker asks the primary, which collects every worker's registry (prom-client's
 * AggregatorRegistry: counters summed, ages maxed) and adds its own (worker restarts).
 */
export function workerMetricsRenderer(registry: Registry, timeoutMs = 5000): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs the worker's answer to the primary's collection request
  const waiting = new Map<string, (message: Message) => void>();
  process.on('message', (value: unknown) => {
    const message = asMessage(value);
    if (message?.type === ANSWER && message.id) waiting.get(message.id)?.(message);
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = randomUUID();
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('the primary did not answer the metrics request'));
      }, timeoutMs);
      waiting.set(id, (message) => {
        clearTimeout(timer);
        waiting.delete(id);
        if (message.error !== undefined) reject(new Error(message.error));
        else resolve(message.text ?? '');
      });
      process.send?.({ type: ASK, id });
    });
}

/** In the primary: answers workers' requests with the aggregate plus `own` (the primary's registry). */
export function serveClusterMetrics(own: Registry): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, value: unknown) => {
    const message = asMessage(value);
    if (message?.type !== ASK) return;
    Promise.all([aggregator.clusterMetrics(), own.metrics()])
      .then(([workers, primary]) => worker.send({ type: ANSWER, id: message.id, text: `${workers}\n${primary}` }))
      .catch((error: unknown) =>
        worker.send({ type: ANSWER, id: message.id, error: error instanceof Error ? error.message : String(error) }),
      );
  });
}

/** Refused because `maxWaiting` tasks already wait: try again after `retryAfterSeconds`. */
export class QueueFullError extends Error {
  readonly retryAfterSeconds: number;

  constructor(retryAfterSeconds: number) {
    super('the queue is full');
    this.name = 'QueueFullError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export type WorkQueue = Readonly<{
  /** Runs `task` when one of `concurrency` turns is free; throws QueueFullError when `maxWaiting` already wait. */
  run<T>(task: () => Promise<T>): Promise<T>;
  /** Tasks running now and tasks waiting for a turn. */
  depth(): { running: number; waiting: number };
}>;

/**
 * At most `concurrency` tasks at once, at most `maxWaiting` more in line (first come, first
 * served), the rest refused at once. Made for password hashing: each hash holds a thread of
 * libuv's pool (4 by default) for tens of milliseconds, and token signing and sqlite3 wait on
 * the same pool; unbounded, a login flood takes all of it. The Retry-After it suggests is the
 * time the line ahead needs, from the mean duration of recent tasks.
 */
export function createWorkQueue(options: Readonly<{ concurrency: number; maxWaiting: number }>): WorkQueue {
  const line: Array<() => void> = [];
  let running = 0;
  let meanMs = 100; // a first guess, replaced as tasks finish

  const release = () => {
    running -= 1;
    const next = line.shift();
    if (next) {
      running += 1;
      next();
    }
  };

  return {
    async run<T>(task: () => Promise<T>): Promise<T> {
      if (running >= options.concurrency) {
        if (line.length >= options.maxWaiting) {
          throw new QueueFullError(Math.max(1, Math.ceil(((line.length + 1) * meanMs) / options.concurrency / 1000)));
        }
        await new Promise<void>((resolve) => line.push(resolve));
      } else {
        running += 1;
      }
      const started = performance.now();
      try {
        return await task();
      } finally {
        meanMs = meanMs * 0.8 + (performance.now() - started) * 0.2;
        release();
      }
    },
    depth: () => ({ running, waiting: line.length }),
  };
}

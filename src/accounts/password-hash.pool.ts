import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { HashJob, HashResult } from './password-hash.worker.ts';

type Pending = { resolve(key: Buffer): void; reject(error: Error): void };
type Thread = { worker: Worker; busy: number };

/** Distributes a job without its id. */
type Job = HashJob extends infer J ? (J extends HashJob ? Omit<J, 'id'> : never) : never;

/**
 * Password hashes on threads of their own, at the lowest CPU priority (password-hash.worker.ts),
 * instead of libuv's four-thread pool that ES256 signing and sqlite3 wait on: a login flood then
 * takes only idle CPU from token issuance. One thread per core at most, made on first use and
 * unref'd (they never keep a process alive); a thread that dies is replaced at the next job.
 * How many hashes run at once is the login route's queue (HASH_CONCURRENCY), not this pool.
 */
export function createHashPool(size = Math.max(1, os.availableParallelism())) {
  const threads: Thread[] = [];
  const pending = new Map<number, Pending & { thread: Thread }>();
  let nextId = 1;

  function spawn(): Thread {
    const worker = new Worker(new URL('./password-hash.worker.ts', import.meta.url));
    const thread: Thread = { worker, busy: 0 };
    worker.unref();
    worker.on('message', (result: HashResult) => {
      const job = pending.get(result.id);
      if (!job) return;
      pending.delete(result.id);
      thread.busy -= 1;
      if (result.key) job.resolve(Buffer.from(result.key));
      else job.reject(new Error(result.error ?? 'password hash failed'));
    });
    const fail = (error: Error) => {
      threads.splice(threads.indexOf(thread), 1);
      for (const [id, job] of pending) {
        if (job.thread !== thread) continue;
        pending.delete(id);
        job.reject(error);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`password hash thread exited (${code})`)));
    threads.push(thread);
    return thread;
  }

  function pick(): Thread {
    const idle = threads.find((thread) => thread.busy === 0);
    if (idle) return idle;
    if (threads.length < size) return spawn();
    return threads.reduce((least, thread) => (thread.busy < least.busy ? thread : least));
  }

  return {
    hash(job: Job): Promise<Buffer> {
      const thread = pick();
      const id = nextId++;
      thread.busy += 1;
      // a waiting job keeps the process alive until its answer comes
      thread.worker.ref();
      return new Promise<Buffer>((resolve, reject) => {
        pending.set(id, { resolve, reject, thread });
        thread.worker.postMessage({ ...job, id });
      }).finally(() => {
        if (thread.busy === 0) thread.worker.unref();
      });
    },
    /** Stops every thread (tests). */
    async close(): Promise<void> {
      await Promise.all(threads.splice(0).map((thread) => thread.worker.terminate()));
    },
  };
}

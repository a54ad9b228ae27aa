import { argon2Sync, scryptSync } from 'node:crypto';
import os from 'node:os';
import { parentPort } from 'node:worker_threads';

/**
 * One password-hashing thread (see password-hash.pool.ts). It lowers its own scheduling
 * priority first: on Linux a thread's nice value is its own, so under a login flood the hashes
 * yield the cores to token signing and the event loop, and take them back when they are idle.
 * The hash runs synchronously here, on this thread, never on libuv's pool.
 */
export type HashJob =
  | { id: number; kind: 'argon2id'; password: string; salt: Buffer; memoryKiB: number; passes: number; parallelism: number; length: number }
  | { id: number; kind: 'scrypt'; password: string; salt: Buffer; N: number; r: number; p: number; length: number };

export type HashResult = { id: number; key?: Uint8Array; error?: string };

/** The nice value of a hashing thread (19 is the lowest priority). */
export const HASH_THREAD_NICE = 19;

function compute(job: HashJob): Buffer {
  const message = job.password.normalize('NFKC');
  if (job.kind === 'argon2id') {
    return argon2Sync('argon2id', {
      message,
      nonce: job.salt,
      parallelism: job.parallelism,
      tagLength: job.length,
      memory: job.memoryKiB,
      passes: job.passes,
    });
  }
  return scryptSync(message, job.salt, job.length, { N: job.N, r: job.r, p: job.p, maxmem: 256 * job.N * job.r + 1024 * 1024 });
}

if (parentPort) {
  const port = parentPort;
  try {
    os.setPriority(HASH_THREAD_NICE);
  } catch {
    // not permitted here (some containers): the thread still keeps hashes off libuv's pool
  }
  port.on('message', (job: HashJob) => {
    let result: HashResult;
    try {
      result = { id: job.id, key: compute(job) };
    } catch (error) {
      result = { id: job.id, error: (error as Error).message };
    }
    port.postMessage(result);
  });
}

import { createHmac } from 'node:crypto';
import type { LimitsConfig, RateLimit } from '../config/config.ts';
import type { Db } from '../db/knex.ts';
import { sha256Hex } from '../shared/hashing.ts';
import { createCounter, refusal, type CounterStore } from './rate-limit.store.ts';
import { createWorkQueue } from './work-queue.ts';

/** One limit: `take` counts one request for `key` and says how long to wait when it is over. */
export type Throttle = Readonly<{
  name: string;
  /** Counts one for `key`; undefined when it may go ahead, else the seconds until it may. */
  take(key: string): Promise<number | undefined>;
  /** Takes one back (the request turned out not to count, e.g. a right password). */
  giveBack(key: string): Promise<void>;
}>;

const UNLIMITED: Throttle = { name: 'off', take: () => Promise.resolve(undefined), giveBack: () => Promise.resolve() };

/** Keys go into a varchar(255) with their prefix: a long or odd one (a client_id nobody vetted) goes in as its hash. */
function boundedKey(key: string): string {
  return /^[\x21-\x7e]{1,100}$/.test(key) ? key : `sha256:${sha256Hex(key)}`;
}

type ThrottleSpec = Readonly<{
  name: string;
  limit: RateLimit | null;
  store: CounterStore;
  /** What is counted: the key as it is (bounded), or e.g. its HMAC. */
  keyOf?: (key: string) => string;
  /**
   * Counts are given back (a request that turned out not to be the caller's, e.g. a 401): then a
   * refused request must not count either, or refusals caused by someone else's requests in
   * flight would outlive them.
   */
  refundable?: boolean;
}>;

function createThrottle(db: Db, spec: ThrottleSpec): Throttle {
  const { name, limit } = spec;
  if (!limit) return { ...UNLIMITED, name };
  const keyOf = spec.keyOf ?? boundedKey;
  const counter = createCounter(db, {
    name,
    points: limit.points,
    durationSeconds: limit.durationSeconds,
    store: spec.store,
    blockInMemory: !spec.refundable,
  });
  return {
    name,
    async take(key) {
      try {
        await counter.consume(keyOf(key));
        return undefined;
      } catch (error) {
        const refused = refusal(error);
        if (!refused) throw error;
        if (spec.refundable) await counter.reward(keyOf(key));
        return Math.max(1, Math.ceil(refused.retryAfterMs / 1000));
      }
    },
    async giveBack(key) {
      await counter.reward(keyOf(key));
    },
  };
}

export type Limits = ReturnType<typeof createLimits>;

/**
 * Every limit of the configuration, and the password-hash queue. Login limits count in the
 * database (shared by all instances: the point of a per-username limit is that spreading the
 * guesses over instances does not multiply them); endpoint limits where `endpointStore` says.
 * Usernames are counted under an HMAC (`usernameSecret`): a username field sometimes holds a
 * password typed one field too early, and the table must not keep it.
 */
export function createLimits(deps: Readonly<{ db: Db; config: LimitsConfig; usernameSecret: string }>) {
  const { db, config } = deps;
  const username = (name: string) => createHmac('sha256', deps.usernameSecret).update(name).digest('base64url');
  const endpoint = config.endpointStore;
  return {
    authPerIp: createThrottle(db, { name: 'auth_ip', limit: config.authPerIp, store: endpoint }),
    loginPerIp: createThrottle(db, { name: 'login_ip', limit: config.loginPerIp, store: 'database' }),
    loginPerUsername: createThrottle(db, { name: 'login_username', limit: config.loginPerUsername, store: 'database', keyOf: username }),
    secondFactorPerAccount: createThrottle(db, { name: 'second_factor_account', limit: config.secondFactorPerAccount, store: 'database' }),
    tokenPerClient: createThrottle(db, { name: 'token_client', limit: config.tokenPerClient, store: endpoint, refundable: true }),
    tokenPerIp: createThrottle(db, { name: 'token_ip', limit: config.tokenPerIp, store: endpoint }),
    introspectionPerClient: createThrottle(db, {
      name: 'introspection_client',
      limit: config.introspectionPerClient,
      store: endpoint,
      refundable: true,
    }),
    introspectionPerIp: createThrottle(db, { name: 'introspection_ip', limit: config.introspectionPerIp, store: endpoint }),
    passwordQueue: createWorkQueue({ concurrency: config.hashConcurrency, maxWaiting: config.hashQueueMax }),
  };
}

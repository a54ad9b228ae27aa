import { errors, type Adapter } from 'oidc-provider';
import { UNAVAILABLE_DESCRIPTION, type Availability } from '../db/availability.ts';

/**
 * oidc-provider's `temporarily_unavailable` (RFC 6749 §4.1.2.1) as a 503 the client sees:
 * its error handler answers `err.statusCode`, and writes `error` and `error_description` only
 * for an error marked `expose` (a 5xx is not, by default: it would say `server_error`).
 */
function temporarilyUnavailable(): InstanceType<typeof errors.TemporarilyUnavailable> {
  return Object.assign(new errors.TemporarilyUnavailable(UNAVAILABLE_DESCRIPTION), { status: 503, statusCode: 503, expose: true });
}

/** `fn`, with a database outage turned into `temporarily_unavailable` (anything else unchanged). */
export function outageAware<A extends unknown[], R>(
  availability: Availability,
  fn: (...args: A) => Promise<R>,
): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await fn(...args);
    } catch (error) {
      if (availability.failed(error)) throw temporarilyUnavailable();
      throw error;
    }
  };
}

type AdapterClass = new (model: string) => Adapter;

/**
 * The adapter, with every method outage-aware: the provider's token, client, session and
 * interaction lookups then answer 503 + `temporarily_unavailable` while the database is away.
 */
export function outageAwareAdapter(availability: Availability, Base: AdapterClass): AdapterClass {
  const guarded = <R>(run: () => Promise<R>): Promise<R> => outageAware(availability, run)();
  return class OutageAwareAdapter extends Base {
    override upsert(...args: Parameters<Adapter['upsert']>) {
      return guarded(() => super.upsert(...args));
    }
    override find(...args: Parameters<Adapter['find']>) {
      return guarded(() => super.find(...args));
    }
    override findByUid(...args: Parameters<Adapter['findByUid']>) {
      return guarded(() => super.findByUid(...args));
    }
    override findByUserCode(...args: Parameters<Adapter['findByUserCode']>) {
      return guarded(() => super.findByUserCode(...args));
    }
    override consume(...args: Parameters<Adapter['consume']>) {
      return guarded(() => super.consume(...args));
    }
    override destroy(...args: Parameters<Adapter['destroy']>) {
      return guarded(() => super.destroy(...args));
    }
    override revokeByGrantId(...args: Parameters<Adapter['revokeByGrantId']>) {
      return guarded(() => super.revokeByGrantId(...args));
    }
  };
}

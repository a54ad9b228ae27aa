import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';

/**
 * The Provider serving new requests. `swap` replaces it atomically: a request already handed
 * to the old one finishes there (it holds its own reference), the next goes to the new one.
 */
export function createProviderHolder(initial: Provider) {
  let current = initial;
  let handler = initial.callback();
  return {
    /** The Provider new requests go to (its models find tokens: src/admin/admin-token.ts). */
    current(): Provider {
      return current;
    },
    handle(req: IncomingMessage, res: ServerResponse): void {
      void handler(req, res);
    },
    swap(next: Provider): void {
      handler = next.callback();
      current = next;
    },
  };
}

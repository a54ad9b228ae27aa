import { createHash } from 'node:crypto';
import * as oauth from 'oauth4webapi';

// Opaque tokens are asked about at Portcullis's introspection endpoint (RFC 7662) with the API's
// own credential (`portcullis resource update --introspector CLIENT_ID`), through oauth4webapi.
// An active answer is cached by the token's hash, never past the token's own `exp` and never
// longer than `maxCacheMs`: how long a revocation may go unseen by an HTTP request. Sessions
// (WebSocket, MQTT) ask again on their own schedule (`fresh`).

export type IntrospectionOptions = Readonly<{
  as: oauth.AuthorizationServer;
  clientId: string;
  clientSecret: string;
  now: () => number;
  fetch?: typeof fetch;
  /** default 30 s */
  maxCacheMs?: number;
  /** default 10,000 answers; the oldest goes first */
  maxEntries?: number;
}>;

export class IntrospectionUnavailable extends Error {}

// guide:begin introspection
export function introspector(options: IntrospectionOptions) {
  const client: oauth.Client = { client_id: options.clientId };
  const auth = oauth.ClientSecretBasic(options.clientSecret);
  const cache = new Map<string, { answer: oauth.IntrospectionResponse; until: number }>();
  const maxCacheMs = options.maxCacheMs ?? 30_000;

  async function ask(token: string): Promise<oauth.IntrospectionResponse> {
    try {
      const response = await oauth.introspectionRequest(options.as, client, auth, token, {
        [oauth.allowInsecureRequests]: new URL(options.as.issuer).protocol === 'http:', // a loopback issuer only (config.ts)
        ...(options.fetch ? { [oauth.customFetch]: options.fetch } : {}),
      });
      return await oauth.processIntrospectionResponse(options.as, client, response);
    } catch (error) {
      throw new IntrospectionUnavailable(`introspection failed: ${(error as Error).message}`);
    }
  }

  return async function introspect(token: string, { fresh = false } = {}): Promise<oauth.IntrospectionResponse> {
    const key = createHash('sha256').update(token).digest('base64url');
    const now = options.now();
    const hit = cache.get(key);
    if (hit && hit.until > now && !fresh) return hit.answer;
    cache.delete(key);
    const answer = await ask(token);
    if (answer.active && typeof answer.exp === 'number') {
      const oldest = cache.keys().next();
      if (cache.size >= (options.maxEntries ?? 10_000) && !oldest.done) cache.delete(oldest.value);
      cache.set(key, { answer, until: Math.min(answer.exp * 1000, now + maxCacheMs) });
    }
    return answer;
  };
}
// guide:end introspection

export type Introspect = ReturnType<typeof introspector>;

import { createHash, createHmac, randomBytes } from 'node:crypto';
import * as jose from 'jose';
import { DPOP_ALGS, Refusal } from './challenges.ts';

// DPoP proofs at a resource server (RFC 9449 §4.3 and §7.1): one check for JWT and opaque tokens
// alike. Nonces are this API's own (§9): an HMAC of the current 5-minute window, so they need no
// storage; the current and the previous window's are accepted. A proof's jti is kept while its
// nonce could still be accepted, so a captured proof cannot be sent twice.

const WINDOW_MS = 300_000;

export type DpopOptions = Readonly<{ now: () => number; secret?: Uint8Array }>;

export type ProofCheck = Readonly<{
  proof: string | undefined;
  method: string;
  /** the request URL as the client called it (query and fragment are ignored) */
  url: string;
  accessToken: string;
  /** the token's cnf.jkt: the thumbprint of the key the proof must be signed with */
  jkt: string;
}>;

const htu = (url: string) => {
  const parsed = new URL(url);
  parsed.search = '';
  parsed.hash = '';
  return parsed.href;
};

const invalidProof = (description: string, nonce: string) => new Refusal('invalid_dpop_proof', description, { scheme: 'DPoP', nonce });

export function dpopChecker(options: DpopOptions) {
  const secret = options.secret ?? randomBytes(32);
  const seen = new Map<string, number>(); // jti → when it may be forgotten
  const nonceOf = (window: number) => createHmac('sha256', secret).update(String(window)).digest('base64url');
  const window = () => Math.floor(options.now() / WINDOW_MS);

  function forgetOld() {
    const now = options.now();
    for (const [jti, until] of seen) if (until <= now) seen.delete(jti);
  }

  return {
    /** The nonce to send in `DPoP-Nonce`. */
    nonce: () => nonceOf(window()),

    // guide:begin dpop
    /** Checks the proof sent with a DPoP-bound token; throws a Refusal saying what is wrong. */
    async check({ proof, method, url, accessToken, jkt }: ProofCheck): Promise<void> {
      const nonce = nonceOf(window());
      if (!proof) throw invalidProof('this token is DPoP-bound: send a DPoP proof in the DPoP header', nonce);
      let verified: jose.JWTVerifyResult & { protectedHeader: jose.JWTHeaderParameters };
      try {
        verified = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
          typ: 'dpop+jwt',
          algorithms: [...DPOP_ALGS],
          requiredClaims: ['jti', 'htm', 'htu', 'iat', 'ath'],
          currentDate: new Date(options.now()),
        });
      } catch (error) {
        throw invalidProof(`the DPoP proof is not valid: ${(error as Error).message}`, nonce);
      }
      const { payload, protectedHeader } = verified;
      const now = options.now() / 1000;
      const jwk = protectedHeader.jwk ?? {}; // EmbeddedJWK has checked it is there
      if (Math.abs(now - (payload.iat ?? 0)) > WINDOW_MS / 1000) throw invalidProof('the DPoP proof is too old (iat)', nonce);
      if (payload.htm !== method) throw invalidProof(`the DPoP proof is for ${String(payload.htm)}, not ${method}`, nonce);
      if (typeof payload.htu !== 'string' || !URL.canParse(payload.htu) || htu(payload.htu) !== htu(url))
        throw invalidProof(`the DPoP proof is for ${String(payload.htu)}, not ${htu(url)}`, nonce);
      if (payload.ath !== createHash('sha256').update(accessToken).digest('base64url'))
        throw invalidProof('the DPoP proof is for another access token (ath)', nonce);
      if ((await jose.calculateJwkThumbprint(jwk)) !== jkt)
        throw new Refusal('invalid_token', 'the DPoP proof is signed by a key other than the one the token is bound to', {
          scheme: 'DPoP',
        });
      // a nonce this API gave out lately (RFC 9449 §9): a proof cannot be made in advance
      if (payload.nonce !== nonce && payload.nonce !== nonceOf(window() - 1))
        throw new Refusal('use_dpop_nonce', 'send the DPoP-Nonce of this answer in the DPoP proof', { scheme: 'DPoP', nonce });
      const jti = `${jwk.x ?? jwk.n ?? ''}:${String(payload.jti)}`;
      if (seen.has(jti)) throw invalidProof('this DPoP proof was used already (jti)', nonce);
      if (seen.size > 10_000) forgetOld();
      seen.set(jti, options.now() + 2 * WINDOW_MS);
    },
    // guide:end dpop
  };
}

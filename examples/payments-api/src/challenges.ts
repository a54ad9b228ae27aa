// Refusals and their challenges: RFC 6750 §3 (Bearer) and RFC 9449 §7.1 (DPoP). Every check of a
// token ends in a Principal or throws a Refusal; each transport turns it into its own answer
// (an HTTP status with WWW-Authenticate, a refused WebSocket upgrade, an MQTT CONNACK code).

export type RefusalCode =
  'invalid_request' | 'invalid_token' | 'invalid_dpop_proof' | 'insufficient_scope' | 'use_dpop_nonce' | 'payment_not_approved';

/** The DPoP proof algorithms this API accepts (RFC 9449 §7.1 `algs`). */
export const DPOP_ALGS = ['ES256', 'PS256'] as const;

const REALM = 'payments';

export class Refusal extends Error {
  readonly code: RefusalCode | undefined;
  readonly status: 400 | 401 | 403;
  /** the scheme the client must use: DPoP for a DPoP-bound token or a DPoP request, else Bearer */
  readonly scheme: 'Bearer' | 'DPoP' | 'both';
  readonly scope: string | undefined;
  /** a fresh nonce the client must put in its next DPoP proof (use_dpop_nonce) */
  readonly nonce: string | undefined;

  constructor(
    code: RefusalCode | undefined,
    description: string,
    options: { scheme?: 'Bearer' | 'DPoP' | 'both'; scope?: string; nonce?: string } = {},
  ) {
    super(description);
    this.code = code;
    this.status = code === 'invalid_request' ? 400 : code === 'insufficient_scope' || code === 'payment_not_approved' ? 403 : 401;
    this.scheme = options.scheme ?? 'Bearer';
    this.scope = options.scope;
    this.nonce = options.nonce;
  }

  /** No credentials at all: a challenge without an error code (RFC 6750 §3.1), offering both schemes. */
  static missing(): Refusal {
    return new Refusal(undefined, 'an access token is required (Authorization: Bearer … or DPoP …)', { scheme: 'both' });
  }

  /** The WWW-Authenticate value; undefined for an application refusal (a payment not approved). */
  challenge(): string | undefined {
    if (this.code === 'payment_not_approved') return undefined;
    const params = [`realm="${REALM}"`];
    if (this.code) params.push(`error="${this.code}"`, `error_description="${quoted(this.message)}"`);
    if (this.scope) params.push(`scope="${this.scope}"`);
    const bearer = `Bearer ${params.join(', ')}`;
    const dpop = `DPoP ${[...params, `algs="${DPOP_ALGS.join(' ')}"`].join(', ')}`;
    if (this.scheme === 'both') return `${bearer}, DPoP realm="${REALM}", algs="${DPOP_ALGS.join(' ')}"`;
    return this.scheme === 'DPoP' ? dpop : bearer;
  }

  /** The JSON body sent with the refusal. */
  body(): { error: string; error_description: string } {
    return { error: this.code ?? 'unauthorized', error_description: this.message };
  }
}

/** An auth-param value may not hold `"` or `\` unescaped, nor control characters (RFC 6750 §3). */
function quoted(text: string): string {
  return text.replace(/[\\"]/g, (char) => `\\${char}`).replace(/[^\x20-\x7e]/g, '?');
}

import { X509Certificate, createPublicKey } from 'node:crypto';
import { invalidInput } from '../shared/errors.ts';
import { isDistinguishedName } from '../shared/distinguished-name.ts';
import { isLoopbackHostname } from '../shared/loopback-hosts.ts';
import type { AuthMethod, PartnerProfileName, PartnerSecurity, PublicJwks, TokenBinding } from './partner.store.ts';

/**
 * How partners prove who they are (financial grade, issue 11): the rules of each client
 * authentication method, profile and token binding, checked before anything is stored.
 */

const PROFILES: readonly PartnerProfileName[] = ['baseline', 'fapi2'];
const AUTH_METHODS: readonly AuthMethod[] = [
  'client_secret_basic',
  'none',
  'private_key_jwt',
  'tls_client_auth',
  'self_signed_tls_client_auth',
];
/** The methods a FAPI 2.0 partner may use: asymmetric keys or certificates, never a shared secret. */
export const ASYMMETRIC_METHODS: readonly AuthMethod[] = ['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'];
/** The methods whose proof is a key set (registered by value or by URL). */
const KEY_METHODS: readonly AuthMethod[] = ['private_key_jwt', 'self_signed_tls_client_auth'];
const BINDINGS = ['dpop', 'mtls'] as const;

/** The algorithms partners sign with (client assertions, request objects, DPoP proofs). */
const PARTNER_SIGNING_ALGS = ['PS256', 'ES256'] as const;

const MAX_KEYS = 10;
const MIN_RSA_BITS = 2048;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

export function parseProfile(raw: string, flag = '--profile'): PartnerProfileName {
  const profile = PROFILES.find((name) => name === raw);
  if (!profile) throw invalidInput(`${flag} ${raw} is not a profile (use ${PROFILES.join(' or ')})`);
  return profile;
}

function parseAuthMethod(raw: string): AuthMethod {
  const method = AUTH_METHODS.find((name) => name === raw);
  if (!method) throw invalidInput(`--auth-method ${raw} is not supported (use ${AUTH_METHODS.join(', ')})`);
  return method;
}

function parseBinding(raw: string): Exclude<TokenBinding, null> {
  const binding = BINDINGS.find((name) => name === raw);
  if (!binding) throw invalidInput(`--token-binding ${raw} is not supported (use dpop or mtls)`);
  return binding;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The public key of a JWK as Node sees it, or a reason. */
function publicKeyOf(jwk: Record<string, unknown>, where: string) {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw invalidInput(`${where} is not a valid public key`);
  }
}

/** One key of a partner's set: a public P-256 or RSA (≥ 2048 bits) signing key. */
function checkKey(jwk: unknown, index: number, needCertificate: boolean): Readonly<Record<string, unknown>> {
  const where = `key ${String(index + 1)} of the key set`;
  if (!isRecord(jwk)) throw invalidInput(`${where} is not a JSON object`);
  const kid = typeof jwk.kid === 'string' ? ` (kid ${jwk.kid})` : '';
  if (PRIVATE_MEMBERS.some((member) => member in jwk))
    throw invalidInput(`${where}${kid} holds private key material: register the public key only`);
  if (jwk.kty === 'EC') {
    if (jwk.crv !== 'P-256') throw invalidInput(`${where}${kid}: EC keys must be on P-256 (ES256)`);
  } else if (jwk.kty !== 'RSA') {
    throw invalidInput(`${where}${kid}: kty must be EC (P-256, for ES256) or RSA (for PS256)`);
  }
  if (jwk.use !== undefined && jwk.use !== 'sig') throw invalidInput(`${where}${kid}: use must be sig`);
  if (jwk.alg !== undefined && !(PARTNER_SIGNING_ALGS as readonly unknown[]).includes(jwk.alg))
    throw invalidInput(`${where}${kid}: alg must be ${PARTNER_SIGNING_ALGS.join(' or ')}`);
  if (jwk.kty === 'EC' && jwk.alg === 'PS256') throw invalidInput(`${where}${kid}: an EC key signs ES256, not PS256`);
  if (jwk.kty === 'RSA' && jwk.alg === 'ES256') throw invalidInput(`${where}${kid}: an RSA key signs PS256, not ES256`);
  const key = publicKeyOf(jwk, `${where}${kid}`);
  if (jwk.kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS)
    throw invalidInput(`${where}${kid}: RSA keys must have at least ${String(MIN_RSA_BITS)} bits`);
  if (needCertificate) checkCertificate(jwk, key, `${where}${kid}`);
  return jwk;
}

/** self_signed_tls_client_auth: the key carries its certificate (`x5c`), and they match. */
function checkCertificate(jwk: Record<string, unknown>, key: ReturnType<typeof createPublicKey>, where: string): void {
  const chain = jwk.x5c;
  if (!Array.isArray(chain) || typeof chain[0] !== 'string')
    throw invalidInput(`${where} has no certificate (x5c): self_signed_tls_client_auth registers each certificate as a key with x5c`);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(Buffer.from(chain[0], 'base64'));
  } catch {
    throw invalidInput(`${where}: x5c[0] is not a base64 DER certificate`);
  }
  if (!certificate.publicKey.equals(key)) throw invalidInput(`${where}: the certificate in x5c is not for this key`);
}

/** A partner's public key set, as registered with `--jwks-file`: parsed and checked. */
function checkJwks(text: string, options: { needCertificate: boolean }): PublicJwks {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalidInput('the key set is not JSON (a JSON Web Key Set: {"keys": [ … ]})');
  }
  if (!isRecord(parsed) || !Array.isArray(parsed.keys)) throw invalidInput('the key set must be a JSON Web Key Set: {"keys": [ … ]}');
  const keys: unknown[] = parsed.keys;
  if (keys.length === 0) throw invalidInput('the key set has no key');
  if (keys.length > MAX_KEYS) throw invalidInput(`the key set has more than ${String(MAX_KEYS)} keys`);
  const checked = keys.map((key, index) => checkKey(key, index, options.needCertificate));
  const kids = checked.map((key) => key.kid);
  if (checked.length > 1 && kids.some((kid) => typeof kid !== 'string' || kid === ''))
    throw invalidInput('every key of a set of several needs a kid (key ID), so that assertions can name theirs');
  if (new Set(kids).size !== kids.length) throw invalidInput('two keys of the set have the same kid');
  return { keys: checked };
}

/** Where the partner publishes its keys: https, or http on the developer's own machine. */
function checkJwksUri(uri: string): string {
  const url = URL.parse(uri);
  if (!url || url.hash || url.username || url.password)
    throw invalidInput(`--jwks-uri ${uri} is not a URL without credentials or fragment`);
  if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHostname(url.hostname))) return url.href;
  throw invalidInput(`--jwks-uri ${uri} must be https (http only on localhost, for development)`);
}

/** An RFC 4514 distinguished name, e.g. `CN=acme-payments,O=ACME Bank,C=GB`. */
function checkSubjectDn(dn: string): string {
  const trimmed = dn.trim();
  // as src/shared/distinguished-name.ts will compare it: a DN it cannot read would match no certificate
  if (!isDistinguishedName(trimmed) || trimmed.length > 1000)
    throw invalidInput(
      `--tls-subject-dn "${dn}" is not an RFC 4514 distinguished name (e.g. "CN=acme-payments,O=ACME Bank,C=GB", most specific first, "\\," for a comma in a value)`,
    );
  return trimmed;
}

/** What the operator asked for; undefined: not given (keep, or the default). */
export type SecurityInput = {
  profile?: string;
  authMethod?: string;
  /** the text of a `--jwks-file` */
  jwksText?: string;
  jwksUri?: string;
  tlsSubjectDn?: string;
  tokenBinding?: string;
  messageSigning?: boolean;
  isPublic?: boolean;
};

/** The method a new partner gets when `--auth-method` is not given: implied by what else was given. */
function impliedMethod(input: SecurityInput): AuthMethod {
  if (input.isPublic) return 'none';
  if (input.tlsSubjectDn !== undefined) return 'tls_client_auth';
  if (input.jwksText !== undefined || input.jwksUri !== undefined) return 'private_key_jwt';
  return 'client_secret_basic';
}

/**
 * The security of a new partner (`current` undefined) or of a partner being changed: what is
 * given replaces, the rest is kept; then every rule is checked on the result.
 */
export function resolveSecurity(
  input: SecurityInput,
  current: PartnerSecurity | undefined,
  defaultProfile: PartnerProfileName,
): PartnerSecurity {
  const authMethod = input.authMethod !== undefined ? parseAuthMethod(input.authMethod) : (current?.authMethod ?? impliedMethod(input));
  const profile = input.profile !== undefined ? parseProfile(input.profile) : (current?.profile ?? defaultProfile);
  if (input.jwksText !== undefined && input.jwksUri !== undefined) throw invalidInput('--jwks-file and --jwks-uri exclude each other');
  const keysGiven = input.jwksText !== undefined || input.jwksUri !== undefined;
  const jwks =
    input.jwksText !== undefined
      ? checkJwks(input.jwksText, { needCertificate: authMethod === 'self_signed_tls_client_auth' })
      : keysGiven
        ? null
        : (current?.jwks ?? null);
  const jwksUri = input.jwksUri !== undefined ? checkJwksUri(input.jwksUri) : keysGiven ? null : (current?.jwksUri ?? null);
  const tlsSubjectDn =
    input.tlsSubjectDn !== undefined
      ? checkSubjectDn(input.tlsSubjectDn)
      : authMethod === 'tls_client_auth'
        ? (current?.tlsSubjectDn ?? null)
        : null;
  const messageSigning = input.messageSigning ?? current?.messageSigning ?? false;
  const hasKeys = jwks !== null || jwksUri !== null;

  if (KEY_METHODS.includes(authMethod) && !hasKeys)
    throw invalidInput(`--auth-method ${authMethod} needs the partner's public keys: --jwks-file FILE or --jwks-uri URL`);
  if (authMethod === 'tls_client_auth' && tlsSubjectDn === null)
    throw invalidInput('--auth-method tls_client_auth needs --tls-subject-dn (the subject of the partner’s certificate)');
  if (input.tlsSubjectDn !== undefined && authMethod !== 'tls_client_auth')
    throw invalidInput('--tls-subject-dn goes with --auth-method tls_client_auth');
  if (hasKeys && (authMethod === 'client_secret_basic' || authMethod === 'none'))
    throw invalidInput(`a partner authenticating with ${authMethod} has no key set: use --auth-method private_key_jwt`);
  if (messageSigning && !hasKeys)
    throw invalidInput('--message-signing needs the partner’s public keys (its request objects are signed): --jwks-file or --jwks-uri');
  if (input.isPublic && authMethod !== 'none')
    throw invalidInput('--public partners authenticate with nothing: --auth-method does not apply');

  let tokenBinding: TokenBinding = input.tokenBinding !== undefined ? parseBinding(input.tokenBinding) : (current?.tokenBinding ?? null);
  if (profile === 'fapi2') {
    if (!ASYMMETRIC_METHODS.includes(authMethod))
      throw invalidInput(
        `${input.profile === undefined && current === undefined ? '(DEFAULT_PROFILE=fapi2, or pass --profile baseline) ' : ''}a fapi2 partner authenticates with its own keys or certificate, not ${authMethod === 'none' ? 'nothing (a public client)' : 'a shared secret'}: --auth-method private_key_jwt --jwks-file FILE (or --jwks-uri URL), tls_client_auth --tls-subject-dn DN, or self_signed_tls_client_auth --jwks-file FILE`,
      );
    // FAPI 2.0: every access token sender-constrained; the natural binding of each method by default
    tokenBinding ??= authMethod === 'private_key_jwt' ? 'dpop' : 'mtls';
  }
  if (tokenBinding === 'mtls' && authMethod === 'none') throw invalidInput('--token-binding mtls needs a confidential partner');
  return { profile, authMethod, jwks, jwksUri, tlsSubjectDn, tokenBinding, messageSigning };
}

/** What `partner show` tells of it (key IDs, never a key). */
export function describeSecurity(security: PartnerSecurity) {
  return {
    profile: security.profile,
    auth_method: security.authMethod,
    ...(security.jwks ? { key_ids: security.jwks.keys.map((key) => (typeof key.kid === 'string' ? key.kid : '(no kid)')) } : {}),
    ...(security.jwksUri ? { jwks_uri: security.jwksUri } : {}),
    ...(security.tlsSubjectDn ? { tls_subject_dn: security.tlsSubjectDn } : {}),
    token_binding: security.tokenBinding ?? 'none (bearer)',
    message_signing: security.messageSigning,
  };
}

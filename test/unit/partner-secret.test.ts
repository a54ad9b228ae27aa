import { hashSecret, secretMatches, toClientMetadata } from '../../src/partners/partner.service.ts';
import { isJwtAccessToken } from '../../src/oidc/jwt-token-type.ts';

describe('partner secrets', () => {
  test('hash is deterministic, prefixed, and not the secret', () => {
    const hash = hashSecret('s3cret');
    expect(hash).toMatch(/^sha256:[A-Za-z0-9_-]{43}$/);
    expect(hash).toBe(hashSecret('s3cret'));
    expect(hash).not.toContain('s3cret');
  });

  test('secretMatches accepts only the right secret', () => {
    const hash = hashSecret('right');
    expect(secretMatches('right', hash)).toBe(true);
    expect(secretMatches('wrong', hash)).toBe(false);
    expect(secretMatches('right', 'sha256:short')).toBe(false);
  });

  test('suspended partners have no client metadata', () => {
    const partner = {
      clientId: 'ptn_x',
      name: 'X',
      secretHash: hashSecret('s'),
      allowed: [{ resource: 'https://api.test/', scope: 'a' }],
      grantTypes: ['client_credentials'],
      redirectUris: [],
      status: 'active' as const,
      createdAt: 0,
      updatedAt: 0,
      profile: 'baseline' as const,
      authMethod: 'client_secret_basic' as const,
      jwks: null,
      jwksUri: null,
      tlsSubjectDn: null,
      tokenBinding: null,
      messageSigning: false,
    };
    expect(toClientMetadata(partner)).toEqual(
      expect.objectContaining({ client_id: 'ptn_x', partner_scopes: { 'https://api.test/': ['a'] }, response_types: [] }),
    );
    expect(toClientMetadata({ ...partner, status: 'suspended' })).toBeUndefined();
    expect(toClientMetadata(undefined)).toBeUndefined();
  });
});

describe('isJwtAccessToken', () => {
  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  test.each([
    [`${b64({ alg: 'ES256', typ: 'at+jwt' })}.${b64({})}.sig`, true],
    [`${b64({ alg: 'ES256', typ: 'application/at+jwt' })}.${b64({})}.sig`, true],
    [`${b64({ alg: 'ES256', typ: 'JWT' })}.${b64({})}.sig`, false],
    ['opaque-token-value', false],
    ['a.b.c', false],
  ])('%s → %s', (value, expected) => expect(isJwtAccessToken(value)).toBe(expected));
});

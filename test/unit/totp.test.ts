import {
  checkTotp,
  hashOneTimeCode,
  newRecoveryCodes,
  newTotpSecret,
  normaliseOneTimeCode,
  totpCode,
  totpUri,
} from '../../src/accounts/totp.service.ts';

// RFC 6238 appendix B: SHA-1 secret "12345678901234567890" (base32 below), 8-digit vectors;
// the 6-digit codes are their last six digits.
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const T = 1111111109 * 1000; // step 37037036

describe('TOTP (RFC 6238: SHA-1, 30 s, 6 digits)', () => {
  test('matches the RFC 6238 test vectors', () => {
    expect(totpCode(RFC_SECRET, 59 * 1000)).toBe('287082');
    expect(totpCode(RFC_SECRET, 1111111109 * 1000)).toBe('081804');
    expect(totpCode(RFC_SECRET, 1234567890 * 1000)).toBe('005924');
    expect(totpCode(RFC_SECRET, 2000000000 * 1000)).toBe('279037');
  });

  test('accepts the current step and one either side, not two', () => {
    const code = totpCode(RFC_SECRET, T);
    expect(checkTotp(RFC_SECRET, code, T, null)).toEqual({ ok: true, step: 37037036 });
    expect(checkTotp(RFC_SECRET, code, T + 30_000, null)).toEqual({ ok: true, step: 37037036 });
    expect(checkTotp(RFC_SECRET, code, T - 30_000, null)).toEqual({ ok: true, step: 37037036 });
    expect(checkTotp(RFC_SECRET, code, T + 60_000, null)).toEqual({ ok: false });
    expect(checkTotp(RFC_SECRET, code, T - 60_000, null)).toEqual({ ok: false });
  });

  test('refuses a used step and older ones', () => {
    const code = totpCode(RFC_SECRET, T);
    expect(checkTotp(RFC_SECRET, code, T, 37037036)).toEqual({ ok: false });
    expect(checkTotp(RFC_SECRET, code, T, 37037037)).toEqual({ ok: false });
    expect(checkTotp(RFC_SECRET, totpCode(RFC_SECRET, T + 30_000), T, 37037036)).toEqual({ ok: true, step: 37037037 });
    // a last step beyond the window (clock skew between instances) refuses, never throws
    expect(checkTotp(RFC_SECRET, code, T, 37037099)).toEqual({ ok: false });
  });

  test('refuses malformed codes, tolerates spaces', () => {
    const code = totpCode(RFC_SECRET, T);
    expect(checkTotp(RFC_SECRET, `${code.slice(0, 3)} ${code.slice(3)}`, T, null).ok).toBe(true);
    for (const bad of ['', '12345', '1234567', 'abcdef', '12345a']) expect(checkTotp(RFC_SECRET, bad, T, null).ok).toBe(false);
  });

  test('new secrets are 160-bit base32, URIs are what authenticator apps read', () => {
    const secret = newTotpSecret();
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    const uri = new URL(totpUri(secret, 'alice', 'Portcullis'));
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(uri.searchParams.get('secret')).toBe(secret);
    expect(uri.searchParams.get('issuer')).toBe('Portcullis');
  });

  test('recovery codes: ten distinct codes, hashed after normalising', () => {
    const codes = newRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const code of codes) expect(code).toMatch(/^[a-z2-9]{4}(-[a-z2-9]{4}){3}$/);
    expect(normaliseOneTimeCode(' ABCD-efgh ')).toBe('abcdefgh');
    expect(hashOneTimeCode(codes[0].toUpperCase().replaceAll('-', ' '))).toBe(hashOneTimeCode(codes[0]));
    expect(hashOneTimeCode(codes[0])).not.toBe(hashOneTimeCode(codes[1]));
  });
});

// Small HTTP pieces every test that talks OAuth needs: one definition each.

/** A confidential partner's credentials. */
export type Partner = Readonly<{ clientId: string; clientSecret: string }>;

/** A partner registered with its API (`seedPartner`): the credentials and the API's URI. */
export type SeededPartner = Partner & Readonly<{ uri: string }>;

/** An `application/x-www-form-urlencoded` body. */
export function form(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

/**
 * RFC 6749 §2.3.1 client authentication: id and secret form-encoded, then Base64. A lone
 * surrogate (which encodeURIComponent refuses) goes as U+FFFD, as a client library would send it.
 */
export function basic(id: string, secret: string): string {
  const encode = (value: string) => encodeURIComponent(value.toWellFormed());
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`;
}

/** The value of the form's hidden `csrf` field. */
export function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error(`no csrf field in:\n${html.slice(0, 500)}`);
  return match[1];
}

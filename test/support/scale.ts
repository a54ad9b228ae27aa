// Client-credentials, introspection and revocation calls by a partner, for the scale-out tests.

import { basic, form, type Partner } from './http.ts';

async function post(base: string, path: string, partner: Partner, fields: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basic(partner.clientId, partner.clientSecret),
      ...headers,
    },
    body: form(fields),
  });
}

/** A client-credentials access token, or a thrown error (network or non-200). */
export async function issueToken(
  base: string,
  partner: Partner,
  scope = 'payments:read',
  headers: Record<string, string> = {},
): Promise<string> {
  const res = await post(base, '/token', partner, { grant_type: 'client_credentials', scope }, headers);
  const body = (await res.json()) as { access_token?: string; error?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`token request: ${res.status} ${body.error}`);
  return body.access_token;
}

export async function introspect(base: string, partner: Partner, token: string): Promise<Record<string, unknown>> {
  const res = await post(base, '/token/introspection', partner, { token });
  if (res.status !== 200) throw new Error(`introspection: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

export async function revoke(base: string, partner: Partner, token: string): Promise<number> {
  const res = await post(base, '/token/revocation', partner, { token });
  await res.arrayBuffer();
  return res.status;
}

import type { Knex } from 'knex';

// Financial grade (issue 11): each partner has a security profile and a way to authenticate
// beyond a shared secret — its own public keys (private_key_jwt, self-signed certificates) or a
// certificate from a trusted CA (tls_client_auth) — and may have its tokens bound to a key
// (DPoP) or a certificate (mTLS). Partners made before keep exactly what they had: baseline,
// client_secret_basic (or none for public ones), bearer tokens.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('partners', (t) => {
    t.string('profile', 16).notNullable().defaultTo('baseline').comment('baseline | fapi2 (FAPI 2.0 Security Profile)');
    t.string('auth_method', 40)
      .notNullable()
      .defaultTo('client_secret_basic')
      .comment('token_endpoint_auth_method: client_secret_basic | none | private_key_jwt | tls_client_auth | self_signed_tls_client_auth');
    t.text('jwks').comment('the partner’s public keys (JSON Web Key Set), when registered by value');
    t.string('jwks_uri', 2000).comment('where the partner publishes its public keys, when registered by reference');
    t.string('tls_subject_dn', 1000).comment('tls_client_auth: the subject DN its certificate must carry (RFC 4514)');
    t.string('token_binding', 8).comment('dpop | mtls: every access token is bound to the key or certificate; NULL: bearer');
    t.boolean('message_signing').notNullable().defaultTo(false).comment('FAPI 2.0 Message Signing: signed request objects, JARM');
  });
  await knex('partners').whereNull('secret_hash').update({ auth_method: 'none' });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('partners', (t) => {
    for (const column of ['profile', 'auth_method', 'jwks', 'jwks_uri', 'tls_subject_dn', 'token_binding', 'message_signing'])
      t.dropColumn(column);
  });
}

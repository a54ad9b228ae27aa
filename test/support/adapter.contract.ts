import { createAdapterClass, hashId, purgeExpired, TABLE } from '../../src/oidc/payload.store.ts';
import type { Db } from '../../src/db/knex.ts';
import { deleteAccountGrants, deletePartnerGrants } from '../../src/grants/grant.store.ts';

/**
 * The storage contract oidc-provider relies on, run unchanged against every engine.
 * `open` gives a migrated, empty database; `close` releases it.
 */
export function adapterContract(engine: string, open: () => Promise<Db>, close: (db: Db) => Promise<void>) {
  describe(`knex adapter contract (${engine})`, () => {
    let db: Db;
    let clock = Date.now();
    const now = () => clock;
    const clientFinder = async (id: string) => (id === 'known' ? { client_id: 'known' } : undefined);
    let Adapter: ReturnType<typeof createAdapterClass>;

    beforeAll(async () => {
      db = await open();
      Adapter = createAdapterClass(db, clientFinder, now);
    });
    afterAll(async () => {
      await close(db);
    });
    beforeEach(() => {
      clock = Date.now();
    });

    const MODELS = [
      'Session',
      'Interaction',
      'Grant',
      'AuthorizationCode',
      'RefreshToken',
      'AccessToken',
      'ClientCredentials',
      'PushedAuthorizationRequest',
      'ReplayDetection',
      'DeviceCode',
      'BackchannelAuthenticationRequest',
      'RegistrationAccessToken',
      'InitialAccessToken',
      'PreAuthorizedCode',
    ];

    test.each(MODELS)('%s: upsert, find, destroy', async (model) => {
      const adapter = new Adapter(model);
      const id = `${model}-id-${Math.random()}`;
      await adapter.upsert(id, { jti: id, kind: model, iat: 1, exp: 2e9, grantId: 'g-1' }, 60);
      expect(await adapter.find(id)).toEqual(expect.objectContaining({ jti: id, kind: model, grantId: 'g-1' }));
      expect(await adapter.find(`${id}-other`)).toBeUndefined();
      await adapter.destroy(id);
      expect(await adapter.find(id)).toBeUndefined();
    });

    test('a bearer value looked up as every token kind at once (introspection) finds its own kind, and a revocation is seen at once', async () => {
      const kinds = ['AccessToken', 'ClientCredentials', 'RefreshToken'].map((model) => new Adapter(model));
      const [access, credentials, refresh] = kinds;
      await credentials.upsert('bearer-1', { jti: 'bearer-1', kind: 'ClientCredentials', clientId: 'known' }, 60);
      const found = await Promise.all(kinds.map((adapter) => adapter.find('bearer-1')));
      expect(found[0]).toBeUndefined();
      expect(found[1]).toEqual(expect.objectContaining({ jti: 'bearer-1', kind: 'ClientCredentials' }));
      expect(found[2]).toBeUndefined();
      await credentials.destroy('bearer-1');
      expect(await Promise.all(kinds.map((adapter) => adapter.find('bearer-1')))).toEqual([undefined, undefined, undefined]);
      await refresh.upsert('bearer-2', { jti: 'bearer-2', kind: 'RefreshToken' }, 60);
      await refresh.consume('bearer-2');
      const [, , consumed] = await Promise.all([access.find('bearer-2'), credentials.find('bearer-2'), refresh.find('bearer-2')]);
      expect(consumed?.consumed).toEqual(expect.any(Number));
    });

    test('upsert replaces the payload of the same id', async () => {
      const adapter = new Adapter('Session');
      await adapter.upsert('s-1', { jti: 's-1', uid: 'u-1', accountId: 'a' }, 60);
      await adapter.upsert('s-1', { jti: 's-1', uid: 'u-1', accountId: 'b' }, 60);
      expect((await adapter.find('s-1'))?.accountId).toBe('b');
    });

    test('models are separate namespaces', async () => {
      await new Adapter('AccessToken').upsert('same', { jti: 'same', kind: 'AccessToken' }, 60);
      expect(await new Adapter('RefreshToken').find('same')).toBeUndefined();
    });

    test('ids are stored hashed, and bearer values are not in the payload', async () => {
      const secretValue = 'bearer-value-that-must-not-be-stored';
      await new Adapter('AccessToken').upsert(secretValue, { jti: secretValue, kind: 'AccessToken', accountId: 'acc' }, 60);
      const rows = await db(TABLE).where({ model: 'AccessToken' });
      expect(rows.some((row: { id: string }) => row.id === secretValue)).toBe(false);
      expect(rows.some((row: { id: string }) => row.id === hashId(secretValue))).toBe(true);
      expect(JSON.stringify(rows)).not.toContain(secretValue);
    });

    test('expiry: a row past its expiresIn is not found, and purge deletes it', async () => {
      const adapter = new Adapter('AuthorizationCode');
      await adapter.upsert('short', { jti: 'short' }, 10);
      await adapter.upsert('kept', { jti: 'kept' }, undefined);
      clock += 11_000;
      expect(await adapter.find('short')).toBeUndefined();
      expect(await adapter.find('kept')).toBeDefined();
      expect(await purgeExpired(db, clock)).toBeGreaterThanOrEqual(1);
      expect(
        await db(TABLE)
          .where({ model: 'AuthorizationCode', id: hashId('short') })
          .first(),
      ).toBeUndefined();
      expect(
        await db(TABLE)
          .where({ model: 'AuthorizationCode', id: hashId('kept') })
          .first(),
      ).toBeDefined();
    });

    test('consume marks the row; find reports consumed', async () => {
      const adapter = new Adapter('RefreshToken');
      await adapter.upsert('rt', { jti: 'rt', grantId: 'g-c' }, 60);
      expect((await adapter.find('rt'))?.consumed).toBeUndefined();
      await adapter.consume('rt');
      const found = await adapter.find('rt');
      expect(typeof found?.consumed).toBe('number');
      expect(found?.consumed).toBeGreaterThan(0);
    });

    test.each(['RefreshToken', 'AuthorizationCode'])(
      '%s: of 20 concurrent consumes one wins; the others get invalid_grant and the grant is gone with every row issued from it',
      async (model) => {
        const adapter = new Adapter(model);
        const grantId = `g-race-${model}`;
        await new Adapter('Grant').upsert(grantId, { jti: grantId, accountId: 'a', clientId: 'c' }, 60);
        await adapter.upsert('once', { jti: 'once', grantId }, 60);
        await new Adapter('AccessToken').upsert('issued', { jti: 'issued', grantId }, 60);
        await new Adapter('AccessToken').upsert('unrelated', { jti: 'unrelated', grantId: 'g-other' }, 60);
        const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => adapter.consume('once')));
        expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
        const reasons = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as { error?: string }] : []));
        expect(reasons.map((reason) => reason.error)).toEqual(Array(19).fill('invalid_grant'));
        expect(await new Adapter('Grant').find(grantId)).toBeUndefined();
        expect(await adapter.find('once')).toBeUndefined();
        expect(await new Adapter('AccessToken').find('issued')).toBeUndefined();
        expect(await new Adapter('AccessToken').find('unrelated')).toBeDefined();
      },
    );

    test('a pushed authorization request consumed twice: the second gets invalid_request_uri', async () => {
      const adapter = new Adapter('PushedAuthorizationRequest');
      await adapter.upsert('par', { jti: 'par', clientId: 'c' }, 60);
      await adapter.consume('par');
      await expect(adapter.consume('par')).rejects.toEqual(expect.objectContaining({ error: 'invalid_request_uri' }));
    });

    test("a partner's and a person's rows are found by owner and deleted in one statement each", async () => {
      const tokens = new Adapter('AccessToken');
      await tokens.upsert('of-p1-a1', { jti: 'of-p1-a1', clientId: 'p1', accountId: 'a1' }, 60);
      await tokens.upsert('of-p1-a2', { jti: 'of-p1-a2', clientId: 'p1', accountId: 'a2' }, 60);
      await tokens.upsert('of-p2-a2', { jti: 'of-p2-a2', clientId: 'p2', accountId: 'a2' }, 60);
      await new Adapter('Session').upsert('session-a2', { jti: 'session-a2', uid: 'u-a2', accountId: 'a2' }, 60);
      await new Adapter('Grant').upsert('grant-p3', { jti: 'grant-p3', clientId: 'p3', accountId: 'a3' }, 60);
      expect(await deletePartnerGrants(db, 'p1')).toBe(2);
      expect(await tokens.find('of-p1-a1')).toBeUndefined();
      expect(await tokens.find('of-p2-a2')).toBeDefined();
      expect(await deleteAccountGrants(db, 'a2')).toBe(2);
      expect(await tokens.find('of-p2-a2')).toBeUndefined();
      expect(await new Adapter('Session').find('session-a2')).toBeUndefined();
      expect(await new Adapter('Grant').find('grant-p3')).toBeDefined();
    });

    test('revokeByGrantId removes every row of the grant in that model only', async () => {
      const codes = new Adapter('AuthorizationCode');
      const tokens = new Adapter('RefreshToken');
      await codes.upsert('c1', { jti: 'c1', grantId: 'g-r' }, 60);
      await codes.upsert('c2', { jti: 'c2', grantId: 'g-r' }, 60);
      await codes.upsert('c3', { jti: 'c3', grantId: 'g-other' }, 60);
      await tokens.upsert('t1', { jti: 't1', grantId: 'g-r' }, 60);
      await codes.revokeByGrantId('g-r');
      expect(await codes.find('c1')).toBeUndefined();
      expect(await codes.find('c2')).toBeUndefined();
      expect(await codes.find('c3')).toBeDefined();
      expect(await tokens.find('t1')).toBeDefined();
    });

    test('findByUid (Session) and findByUserCode (DeviceCode)', async () => {
      await new Adapter('Session').upsert('sess-id', { jti: 'sess-id', uid: 'uid-123', kind: 'Session' }, 60);
      expect(await new Adapter('Session').findByUid('uid-123')).toEqual(expect.objectContaining({ jti: 'sess-id', uid: 'uid-123' }));
      expect(await new Adapter('Session').findByUid('nope')).toBeUndefined();
      await new Adapter('DeviceCode').upsert('dc-id', { jti: 'dc-id', userCode: 'ABCD-EFGH', kind: 'DeviceCode' }, 60);
      expect(await new Adapter('DeviceCode').findByUserCode('ABCD-EFGH')).toEqual(expect.objectContaining({ jti: 'dc-id' }));
      expect(await new Adapter('DeviceCode').findByUserCode('ZZZZ')).toBeUndefined();
    });

    test('Client is answered from the partner source and cannot be written', async () => {
      const clients = new Adapter('Client');
      expect(await clients.find('known')).toEqual({ client_id: 'known' });
      expect(await clients.find('unknown')).toBeUndefined();
      await expect(clients.upsert('x', { client_id: 'x' }, undefined)).rejects.toThrow(/portcullis partner/);
    });

    test('payloads survive a JSON round trip with unicode and nesting', async () => {
      const payload = {
        jti: 'g',
        accountId: 'Zoë 💳',
        openid: { scope: 'openid', claims: ['sub'] },
        resources: { 'https://api.test/': 'a b' },
      };
      await new Adapter('Grant').upsert('g', payload, undefined);
      expect(await new Adapter('Grant').find('g')).toEqual(payload);
    });
  });
}

import net from 'node:net';
import tls from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type { PaymentBus } from './bus.ts';
import { Refusal } from './challenges.ts';
import type { SessionWatch, Session } from './sessions.ts';
import { Unavailable, type Principal, type TokenVerifier } from './tokens.ts';

// MQTT for terminals (aedes broker). CONNECT with the partner's client_id as username and an
// access token as password; a partner reaches only partners/{its client_id}/payments/#, to
// subscribe with payments:read and to publish with payments:write. The broker drops the session
// when the token expires (or, opaque, is revoked). MQTT has no place for a DPoP proof: a
// DPoP-bound token is refused here; a certificate-bound one is accepted over TLS with its
// certificate.

/** CONNACK return codes (MQTT 3.1.1 §3.2.2.3); aedes types them as a const enum, which erasable TypeScript cannot name. */
const BAD_CREDENTIALS = 4;
const NOT_AUTHORIZED = 5;
const SERVER_UNAVAILABLE = 3;

const connackError = (message: string, returnCode: 3 | 4 | 5) =>
  Object.assign(new Error(message), { returnCode }) as unknown as AuthenticateError;

/** Whether a topic (or topic filter) lies under partners/{clientId}/payments. */
function partnerTopic(topic: string, clientId: string): boolean {
  const [root, partner, payments] = topic.split('/');
  return root === 'partners' && partner === clientId && payments === 'payments';
}

export async function paymentsBroker(deps: {
  verifier: TokenVerifier;
  sessions: SessionWatch;
  bus: PaymentBus;
  now: () => number;
  tls?: { cert: string; key: string };
  log: (line: object) => void;
}) {
  const principals = new WeakMap<Client, Principal>();
  const sessions = new WeakMap<Client, Session>();

  // guide:begin mqtt-auth
  const broker = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const peer = (client.conn as Partial<tls.TLSSocket>).getPeerCertificate?.();
      deps.verifier
        .verify({
          authorization: `Bearer ${password?.toString('utf8') ?? ''}`,
          dpop: undefined,
          method: 'CONNECT',
          url: 'mqtt:',
          peerCertificate: peer?.raw,
        })
        .then((principal) => {
          if (username !== principal.clientId) {
            done(connackError('the username must be the token’s client_id', NOT_AUTHORIZED), false);
            return;
          }
          principals.set(client, principal);
          const session: Session = { principal, end: () => client.close() };
          sessions.set(client, session);
          deps.sessions.add(session);
          done(null, true);
        })
        .catch((error: unknown) => {
          if (error instanceof Refusal) done(connackError(error.message, BAD_CREDENTIALS), false);
          else if (error instanceof Unavailable) done(connackError(error.message, SERVER_UNAVAILABLE), false);
          else {
            deps.log({ level: 'error', msg: 'MQTT authentication failed', error: String(error) });
            done(connackError('server error', SERVER_UNAVAILABLE), false);
          }
        });
    },
    authorizeSubscribe(client, subscription, done) {
      const principal = principals.get(client);
      const allowed =
        principal &&
        principal.expiresAt > deps.now() &&
        principal.scopes.has('payments:read') &&
        partnerTopic(subscription.topic, principal.clientId);
      done(null, allowed ? subscription : null); // null: the SUBACK says 0x80 (refused)
    },
    authorizePublish(client, packet, done) {
      const principal = client && principals.get(client);
      const allowed =
        principal &&
        principal.expiresAt > deps.now() &&
        principal.scopes.has('payments:write') &&
        partnerTopic(packet.topic, principal.clientId);
      done(allowed ? null : new Error(`not allowed to publish to ${packet.topic}`)); // an error disconnects the client
    },
  });
  // guide:end mqtt-auth

  broker.on('clientDisconnect', (client) => {
    const session = sessions.get(client);
    if (session) deps.sessions.remove(session);
  });

  const unsubscribe = deps.bus.subscribe((payment) => {
    broker.publish(
      {
        cmd: 'publish',
        topic: `partners/${payment.clientId}/payments/${payment.id}`,
        payload: Buffer.from(JSON.stringify({ payment_id: payment.id, status: payment.status, payment })),
        qos: 1,
        retain: false,
        dup: false,
      },
      () => undefined,
    );
  });

  const server = deps.tls
    ? tls.createServer({ ...deps.tls, requestCert: true, rejectUnauthorized: false }, broker.handle)
    : net.createServer(broker.handle);
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        unsubscribe();
        broker.close(() => server.close(() => resolve()));
      }),
  };
}

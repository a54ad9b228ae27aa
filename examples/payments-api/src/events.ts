import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { Refusal } from './challenges.ts';
import type { PaymentBus } from './bus.ts';
import { presentedBy } from './http.ts';
import type { SessionWatch, Session } from './sessions.ts';
import { requireScope, Unavailable, type Presented, type Principal, type TokenVerifier } from './tokens.ts';

// WebSocket /events: a partner's payment status events. The upgrade request carries the token
// (Authorization, and DPoP where bound: htm GET, htu the https:// URL of /events); a refused
// upgrade is an HTTP answer with the same challenge as the API's. The socket closes at the
// token's expiry or revocation with a close code saying which; before that the client may send
// {"type":"authenticate","authorization":"Bearer …","dpop":"…"} with a new token of the same
// partner and person, and the socket lives on to that token's expiry.

/** Close codes (4000–4999 are the application's, RFC 6455 §7.4.2). */
export const CLOSE = { expired: 4001, revoked: 4002, forbidden: 4003 } as const;

const SCOPE = 'payments:read';

function refuseUpgrade(socket: Duplex, error: unknown) {
  const status: number = error instanceof Refusal ? error.status : error instanceof Unavailable ? 503 : 500;
  const body = JSON.stringify(
    error instanceof Refusal ? error.body() : { error: status === 503 ? 'temporarily_unavailable' : 'server_error' },
  );
  const headers = [
    `HTTP/1.1 ${status} ${({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' } as Record<number, string>)[status] ?? 'Error'}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  if (error instanceof Refusal) {
    const challenge = error.challenge();
    if (challenge) headers.push(`WWW-Authenticate: ${challenge}`);
    if (error.nonce) headers.push(`DPoP-Nonce: ${error.nonce}`);
  }
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}

export function paymentEvents(server: http.Server, deps: { verifier: TokenVerifier; sessions: SessionWatch; bus: PaymentBus }) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });

  // guide:begin ws-upgrade
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if ((req.url ?? '').split('?')[0] !== '/events') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const presented = presentedBy(req);
    deps.verifier
      .verify(presented)
      .then((principal) => {
        requireScope(principal, SCOPE);
        wss.handleUpgrade(req, socket, head, (ws) => opened(ws, principal, presented));
      })
      .catch((error: unknown) => refuseUpgrade(socket, error));
  });
  // guide:end ws-upgrade

  function opened(ws: WebSocket, principal: Principal, presented: Presented) {
    const session: Session = { principal, end: (reason) => ws.close(CLOSE[reason], `token ${reason}`) };
    deps.sessions.add(session);
    const unsubscribe = deps.bus.subscribe((payment) => {
      if (payment.clientId === session.principal.clientId)
        ws.send(JSON.stringify({ type: 'payment.status', payment_id: payment.id, status: payment.status, payment }));
    });
    ws.on('close', () => {
      deps.sessions.remove(session);
      unsubscribe();
    });
    ws.on('message', (data: Buffer) => void reauthenticate(ws, session, String(data), presented));
    ws.send(JSON.stringify({ type: 'ready', client_id: principal.clientId, expires_at: new Date(principal.expiresAt).toISOString() }));
  }

  // guide:begin ws-reauthenticate
  /** A new token on the open socket: same partner and person, the same checks as the upgrade's. */
  async function reauthenticate(ws: WebSocket, session: Session, text: string, upgrade: Presented) {
    let message: { type?: unknown; authorization?: unknown; dpop?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      message = {};
    }
    if (message.type !== 'authenticate' || typeof message.authorization !== 'string') {
      ws.send(
        JSON.stringify({ type: 'error', error: 'invalid_request', error_description: 'send {"type":"authenticate","authorization":"…"}' }),
      );
      return;
    }
    try {
      const principal = await deps.verifier.verify({
        authorization: message.authorization,
        dpop: typeof message.dpop === 'string' ? message.dpop : undefined,
        method: 'GET',
        url: upgrade.url,
        peerCertificate: upgrade.peerCertificate,
      });
      requireScope(principal, SCOPE);
      if (principal.clientId !== session.principal.clientId || principal.subject !== session.principal.subject) {
        ws.close(CLOSE.forbidden, 'a token of another partner or person');
        return;
      }
      deps.sessions.renew(session, principal);
      ws.send(JSON.stringify({ type: 'authenticated', expires_at: new Date(principal.expiresAt).toISOString() }));
    } catch (error) {
      const body = error instanceof Refusal ? error.body() : { error: 'temporarily_unavailable', error_description: String(error) };
      ws.send(JSON.stringify({ type: 'error', ...body, ...(error instanceof Refusal && error.nonce ? { dpop_nonce: error.nonce } : {}) }));
    }
  }
  // guide:end ws-reauthenticate

  return { close: () => wss.close() };
}

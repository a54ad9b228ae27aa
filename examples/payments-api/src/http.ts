import type http from 'node:http';
import type { TLSSocket } from 'node:tls';
import Router from '@koa/router';
import Koa from 'koa';
import { Refusal } from './challenges.ts';
import type { PaymentBus } from './bus.ts';
import { BadOrder, parseOrder, type PaymentLedger } from './payments.ts';
import { requireScope, Unavailable, type Presented, type Principal, type TokenVerifier } from './tokens.ts';

// The HTTP(S) API: GET /accounts (accounts:read), POST /payments (payments:write, and the
// payment must be the approved one). Refusals carry RFC 6750 / RFC 9449 challenges.

const BODY_LIMIT = 16 * 1024;

/** What a request presents, for the token checks (the same for a WebSocket upgrade). */
export function presentedBy(req: http.IncomingMessage): Presented {
  const socket = req.socket as Partial<TLSSocket>;
  const tls = Boolean(socket.encrypted);
  const peer = tls ? socket.getPeerCertificate?.() : undefined;
  return {
    authorization: req.headers.authorization,
    dpop: typeof req.headers.dpop === 'string' ? req.headers.dpop : undefined,
    method: req.method ?? 'GET',
    url: `${tls ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}${(req.url ?? '/').split('?')[0]}`,
    peerCertificate: peer?.raw,
  };
}

type State = { principal: Principal };

export function paymentsApp(deps: { verifier: TokenVerifier; ledger: PaymentLedger; bus: PaymentBus; log: (line: object) => void }) {
  const app = new Koa<State>();
  const router = new Router<State>();

  // guide:begin http-refusals
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (error instanceof Refusal) {
        ctx.status = error.status;
        const challenge = error.challenge();
        if (challenge) ctx.set('WWW-Authenticate', challenge);
        if (error.nonce) ctx.set('DPoP-Nonce', error.nonce);
        ctx.body = error.body();
      } else if (error instanceof Unavailable) {
        ctx.status = 503;
        ctx.set('Retry-After', '5');
        ctx.body = { error: 'temporarily_unavailable', error_description: 'the issuer cannot be reached to check the token' };
        deps.log({ level: 'warn', msg: error.message });
      } else {
        ctx.status = 500;
        ctx.body = { error: 'server_error' };
        deps.log({ level: 'error', msg: 'request failed', error: String(error) });
      }
    }
  });
  // guide:end http-refusals

  // guide:begin http-routes
  /** The token, then the scope: the principal is in ctx.state for the route. */
  const authenticated =
    (scope: string): Koa.Middleware<State> =>
    async (ctx, next) => {
      const presented = presentedBy(ctx.req);
      ctx.state.principal = await deps.verifier.verify(presented);
      if (presented.dpop) ctx.set('DPoP-Nonce', deps.verifier.dpopNonce());
      requireScope(ctx.state.principal, scope);
      await next();
    };

  router.get('/accounts', authenticated('accounts:read'), (ctx) => {
    const { subject, clientId } = ctx.state.principal;
    ctx.body = {
      accounts: [{ id: `acc-${subject}`, iban: 'DE02120300000000202051', currency: 'EUR', holder: subject, viewedBy: clientId }],
    };
  });

  router.post('/payments', authenticated('payments:write'), async (ctx) => {
    let order;
    try {
      order = parseOrder(await jsonBody(ctx.req));
    } catch (error) {
      if (!(error instanceof BadOrder)) throw error;
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: error.message };
      return;
    }
    const payment = deps.ledger.execute(ctx.state.principal, order); // 403 unless approved
    deps.bus.publish(payment);
    ctx.status = 201;
    ctx.body = payment;
  });
  // guide:end http-routes

  app.use(router.routes()).use(router.allowedMethods());
  return app;
}

async function jsonBody(req: http.IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > BODY_LIMIT) throw new BadOrder(`the body is larger than ${BODY_LIMIT} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new BadOrder('the body must be JSON');
  }
}

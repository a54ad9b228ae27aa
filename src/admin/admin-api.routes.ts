import Router, { type RouterContext } from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import { z } from 'zod';
import { readJson } from '../http/json-body.ts';
import { requestIdOf } from '../http/request-log.middleware.ts';
import { clientAddress } from '../limits/source-address.ts';
import type { Logger } from '../log/logger.ts';
import { ADMIN_API_PATH } from '../resources/resource.service.ts';
import { AppError } from '../shared/errors.ts';
import { openApiDocument } from './admin-api.openapi.ts';
import { OPERATIONS, type Operation, type OperationDeps } from './admin-api.operations.ts';
import { AdminTokenError, bearerToken, verifyAdminToken, type AdminTokenDeps } from './admin-token.ts';

export type AdminApiDeps = Readonly<{
  token: AdminTokenDeps;
  operations: OperationDeps;
  issuer: string;
  version: string;
  trustProxy: boolean;
  log: Logger;
  /** whether an error is the database being away (answered 503 + Retry-After) */
  unavailable: (error: unknown) => boolean;
  retryAfterSeconds: number;
}>;

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  428: 'Precondition Required',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

/** RFC 9457: `type` about:blank, the status's own title, a `detail` in words and our stable `code`. */
function answerProblem(ctx: Context, status: number, code: string, detail: string, extra: Record<string, unknown> = {}): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'application/problem+json';
  ctx.body = { type: 'about:blank', title: TITLES[status] ?? 'Error', status, detail, code, ...extra };
}

/** zod's issues as `{ path, message }`, path in JSON Pointer form of the part of the request. */
function issuesOf(error: z.ZodError, where: string) {
  return error.issues.slice(0, 20).map((issue) => ({
    path: `${where}${issue.path.map((part) => `/${String(part)}`).join('')}`,
    message: issue.message,
  }));
}

function validated<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success)
    throw Object.assign(new AppError('invalid_input', `the ${where} is not valid: ${result.error.issues[0]?.message ?? ''}`), {
      errors: issuesOf(result.error, where),
    });
  return result.data;
}

/** `If-Match: "<version>"` → the version; required on updates (428 without), anything else cannot match (412). */
function ifMatchOf(ctx: Context): number {
  const header = ctx.get('if-match');
  if (!header)
    throw new AppError('precondition_required', 'this update requires If-Match with the ETag of the thing as last read (GET it first)', {
      status: 428,
    });
  const match = /^"(\d{1,16})"$/.exec(header.trim());
  if (!match) throw new AppError('precondition_failed', 'If-Match must be one ETag as this API gave it (a quoted number)', { status: 412 });
  return Number(match[1]);
}

/** The query string as zod sees it: a repeated parameter is an array (and refused by the schemas). */
const queryOf = (ctx: Context) => ctx.query as Record<string, unknown>;

/**
 * The admin API under /admin/api/v1: JSON, authorized by Portcullis's own tokens (admin-token.ts),
 * every operation from OPERATIONS (the OpenAPI document at /admin/api/v1/openapi.json is made from
 * the same list). Every error is an RFC 9457 problem; an unexpected one is logged and answered 500
 * without its message.
 */
export function adminApiRoutes(deps: AdminApiDeps): Middleware {
  const router = new Router({ prefix: ADMIN_API_PATH });
  let document: unknown;
  router.get('/openapi.json', (ctx) => {
    document ??= openApiDocument(OPERATIONS, deps.issuer, deps.version);
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = document;
  });
  for (const operation of OPERATIONS) {
    const path = operation.path.replace(/\{(\w+)\}/g, ':$1');
    router[operation.method](path, (ctx: RouterContext) => handle(deps, operation, ctx));
  }
  const routes = router.routes();
  const methods = router.allowedMethods({ throw: true });
  const prefix = `${ADMIN_API_PATH}/`;

  return async function adminApi(ctx: Context, next: Next) {
    if (ctx.path !== ADMIN_API_PATH && !ctx.path.startsWith(prefix)) {
      await next();
      return;
    }
    try {
      await routes(ctx as never, () => {
        answerProblem(ctx, 404, 'not_found', `no operation at ${ctx.path} (see ${ADMIN_API_PATH}/openapi.json)`);
        return Promise.resolve();
      });
      await methods(ctx as never, () => Promise.resolve());
    } catch (error) {
      answerError(deps, ctx, error);
    }
  };
}

function answerError(deps: AdminApiDeps, ctx: Context, error: unknown): void {
  if (error instanceof AdminTokenError) {
    ctx.set('WWW-Authenticate', error.challenge);
    answerProblem(ctx, error.status, error.code, error.message);
  } else if (error instanceof AppError && error.status < 500) {
    const extra = 'errors' in error ? { errors: (error as { errors: unknown }).errors } : {};
    answerProblem(ctx, error.status, error.code, error.message, extra);
  } else if (deps.unavailable(error)) {
    ctx.set('Retry-After', String(deps.retryAfterSeconds));
    answerProblem(ctx, 503, 'temporarily_unavailable', 'the service is briefly unavailable: retry shortly');
  } else if (isHttpError(error) && error.status < 500) {
    // @koa/router's 405 (with Allow already set)
    answerProblem(ctx, error.status, error.status === 405 ? 'method_not_allowed' : 'invalid_request', error.message);
  } else if (isHttpError(error) && error.status === 501) {
    answerProblem(ctx, 501, 'not_implemented', error.message);
  } else {
    deps.log.error('admin API: request failed', { request_id: requestIdOf(ctx), path: ctx.path, err: error });
    // an AppError of ours at 500 (an audit row not written after a change) says what happened
    const detail = error instanceof AppError && error.expose ? error.message : 'the request failed on the server (see its log)';
    answerProblem(ctx, 500, error instanceof AppError ? error.code : 'internal_error', detail);
  }
}

const isHttpError = (error: unknown): error is { status: number; message: string } =>
  typeof error === 'object' &&
  error !== null &&
  typeof (error as { status?: unknown }).status === 'number' &&
  (error as { expose?: unknown }).expose === true;

async function handle(deps: AdminApiDeps, operation: Operation, ctx: RouterContext): Promise<void> {
  const caller = await verifyAdminToken(deps.token, bearerToken(ctx.get('authorization') || undefined, deps.token.audience), {
    scope: operation.scope,
    sourceIp: clientAddress(ctx, deps.trustProxy),
    requestId: requestIdOf(ctx),
  });
  const params = validated(operation.params ?? z.strictObject({}), { ...ctx.params }, 'path');
  const query = validated(operation.query ?? z.strictObject({}), queryOf(ctx), 'query');
  const raw = operation.method === 'get' ? undefined : await readJson(ctx);
  if (!operation.body && raw !== undefined) throw new AppError('invalid_input', 'this operation takes no body');
  const body = operation.body ? validated(operation.body, raw, 'body') : undefined;
  const ifMatch = operation.ifMatch ? ifMatchOf(ctx) : undefined;
  const result = await operation.run({ params, query, body, caller, ifMatch, deps: deps.operations });
  ctx.status = operation.creates ? 201 : 200;
  ctx.set('Cache-Control', 'no-store');
  if (result.version !== undefined) ctx.set('ETag', `"${String(result.version)}"`);
  if (result.location) ctx.set('Location', `${ADMIN_API_PATH}${result.location}`);
  ctx.body = result.body;
}

/**
 * The one error type of the application. `code` is a stable machine word (for OAuth endpoints
 * the RFC error code), `status` the HTTP status, `expose` whether the message may be shown.
 */
export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly expose: boolean;

  constructor(code: string, message: string, options: { status?: number; expose?: boolean } = {}) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.status = options.status ?? 400;
    this.expose = options.expose ?? this.status < 500;
  }
}

export function invalidInput(message: string): AppError {
  return new AppError('invalid_input', message, { status: 400 });
}

export function notFound(message: string): AppError {
  return new AppError('not_found', message, { status: 404 });
}

/** An If-Match that no longer holds: someone changed the thing since it was read (HTTP 412). */
export function preconditionFailed(what: string): AppError {
  return new AppError('precondition_failed', `${what} was changed meanwhile: read it again (its new ETag) and retry`, { status: 412 });
}

/**
 * Where oidc-provider's own reason for a refusal is kept for the client (`error_detail`, which it
 * withholds behind "grant request is invalid" or "client authentication failed"): set on
 * `ctx.state` by the provider's error events (src/oidc/provider.factory.ts), told by
 * src/http/oauth-error-text.ts.
 */
export const ERROR_DETAIL = Symbol('oidc-provider error_detail');

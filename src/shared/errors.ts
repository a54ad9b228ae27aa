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

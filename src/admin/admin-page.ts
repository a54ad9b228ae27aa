import type { Context, Next } from 'koa';
import type { PartnerProfileName } from '../partners/partner.store.ts';
import type { Db } from '../db/knex.ts';
import type { ConsoleSignIn } from '../http/console-session.ts';
import type { Keyring } from '../keys/kek.ts';
import type { RotationPolicy } from '../keys/signing-key.lifecycle.ts';
import { AppError } from '../shared/errors.ts';

/** What the overview, partner, API and key pages need besides the sign-in (built in src/app.ts). */
export type AdminPagesDeps = Readonly<{
  db: Db;
  keyring: Keyring;
  /** KEY_* as the rotation rules read them */
  policy: RotationPolicy;
  /** DEFAULT_PROFILE */
  defaultProfile: PartnerProfileName;
  issuer: string;
  /** Tokens issued and refused login steps over the last hour, counted by this process. */
  lastHour(): { tokensIssued: number; failedLogins: number };
  /** After a key change made here: this instance serves the new key set at once (others at their next poll). */
  keysChanged(): Promise<void>;
  /** 32-byte keys (base64url), the first seals: a secret waiting to be shown once (one-time-reveal.ts). */
  revealKeys: readonly string[];
}>;

/** Renders `view` (views/admin/*.eta) as a console page, with the navigation and the session's CSRF token. */
export type Show = (ctx: Context, title: string, view: string, data?: Record<string, unknown>) => void;

/** What each area's pages get: the sign-in middleware, `show`, and the domain's dependencies. */
export type AdminPages = AdminPagesDeps & Readonly<{ signIn: ConsoleSignIn; show: Show }>;

/** A refusal the person can act on: a 4xx AppError whose message may be shown. */
export function shownRefusal(error: unknown): AppError | undefined {
  return error instanceof AppError && error.expose && error.status >= 400 && error.status < 500 ? error : undefined;
}

/**
 * The services speak the CLI's language (`--redirect-uri … must be https`): on a page, each
 * option becomes the label of the field that holds it.
 */
export function inWords(message: string, labels: Readonly<Record<string, string>>): string {
  return message.replace(/--([a-z][a-z-]*)/g, (flag, name: string) => (labels[name] ? `“${labels[name]}”` : flag));
}

/**
 * Around a console page: a refusal thrown below (an unknown partner, a form too large, a
 * bad cursor) becomes a page with its status and message, never a 500 or a stack.
 */
export function refusalPages(show: Show) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (error) {
      const refusal = shownRefusal(error);
      if (!refusal) throw error;
      const title = refusal.status === 404 ? 'Not found' : refusal.status === 413 ? 'Too large' : 'Not possible';
      // back to the section the request was in (/admin/partners/x/y → /admin/partners)
      show(ctx, title, 'admin/problem', { message: refusal.message, back: ctx.path.split('/').slice(0, 3).join('/') });
      ctx.status = refusal.status;
    }
  };
}

/** A text field of a form, trimmed; absent is ''. */
export function field(ctx: Context, name: string): string {
  return ((ctx.state.form as Partial<Record<string, string>> | undefined)?.[name] ?? '').trim();
}

/** A query parameter given once, or undefined. */
export function queryText(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** An instant as pages show it: `2026-11-29 20:10 UTC`. */
export function when(at: string | number | null | undefined): string {
  if (at === null || at === undefined) return '—';
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? '—' : `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A setting's seconds as people read them: `1 day`, `5 seconds`, `90 minutes`. */
export function duration(seconds: number): string {
  const units: Array<[number, string]> = [
    [86_400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ];
  const [size, unit] = units.find(([size]) => seconds >= size && seconds % size === 0) ?? [1, 'second'];
  const count = seconds / size;
  return `${String(count)} ${unit}${count === 1 ? '' : 's'}`;
}

/** A path parameter of the route (`:id`), decoded; '' when the route has none of that name. */
export function param(ctx: Context, name: string): string {
  return (ctx.params as Record<string, string | undefined> | undefined)?.[name] ?? '';
}

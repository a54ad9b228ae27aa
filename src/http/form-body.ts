import type { Context } from 'koa';
import { AppError } from '../shared/errors.ts';

const FORM_LIMIT_BYTES = 16 * 1024;

/** Fields by name; a field the form did not send is absent. */
export type Form = Partial<Record<string, string>>;

/**
 * Reads an `application/x-www-form-urlencoded` body of at most `limit` bytes. Only our own
 * form routes call it: a global body parser would make oidc-provider warn (it parses its own).
 */
export async function readForm(ctx: Context, limit = FORM_LIMIT_BYTES): Promise<Form> {
  if (!ctx.is('application/x-www-form-urlencoded'))
    throw new AppError('invalid_input', 'The form was not sent as a form.', { status: 415 });
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) throw new AppError('too_large', 'What was sent is too large.', { status: 413 });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AppError('too_large', 'What was sent is too large.', { status: 413 });
    chunks.push(chunk as Buffer);
  }
  const fields: Form = {};
  for (const [name, value] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) {
    if (!(name in fields)) fields[name] = value; // first value wins; repeated fields are not a thing here
  }
  return fields;
}

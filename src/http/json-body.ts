import type { Context } from 'koa';
import { AppError } from '../shared/errors.ts';

/** The largest JSON body taken: a partner's key set (64 KiB) with room to spare. */
const JSON_LIMIT_BYTES = 128 * 1024;

/**
 * Reads an `application/json` body of at most `limit` bytes; undefined when none was sent. Only
 * our own JSON routes call it (oidc-provider parses its own bodies). Refusals: 415 for another
 * media type, 413 past the limit, 400 for text that is not JSON.
 */
export async function readJson(ctx: Context, limit = JSON_LIMIT_BYTES): Promise<unknown> {
  const declared = Number(ctx.get('content-length') || 0);
  if (!ctx.request.length && !ctx.get('transfer-encoding')) return undefined;
  if (!ctx.is('application/json')) throw new AppError('unsupported_media_type', 'send the body as application/json', { status: 415 });
  if (declared > limit) throw new AppError('too_large', `the body is larger than ${String(limit)} bytes`, { status: 413 });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AppError('too_large', `the body is larger than ${String(limit)} bytes`, { status: 413 });
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AppError('invalid_json', 'the body is not valid JSON', { status: 400 });
  }
}

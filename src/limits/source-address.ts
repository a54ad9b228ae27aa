import net from 'node:net';
import type { Context } from 'koa';

/**
 * The address a request counts against. Without a trusted proxy: the TCP peer (X-Forwarded-For
 * is whatever the client wrote). With TRUST_PROXY=1: the last X-Forwarded-For entry, the one our
 * proxy appended; Koa's `ctx.ip` would take the first, which the client chooses (a proxy appends
 * to the header it was sent), so rotating it would dodge every per-address limit. One proxy hop.
 */
export function sourceAddress(ctx: Context, trustProxy: boolean): string {
  return addressKey(clientAddress(ctx, trustProxy));
}

/** The client's address as seen by the rule above, whole (for the log; limits count by `sourceAddress`). */
export function clientAddress(ctx: Context, trustProxy: boolean): string {
  const forwarded = trustProxy
    ? ctx
        .get('X-Forwarded-For')
        .split(',')
        .map((entry) => entry.trim())
        .filter(Boolean)
        .at(-1)
    : undefined;
  const address = forwarded ?? ctx.req.socket.remoteAddress ?? 'unknown';
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice('::ffff:'.length) : address;
}

/**
 * IPv4 as it is (IPv4-mapped IPv6 included); IPv6 by its /64, which one subscriber usually has
 * whole, so that walking through it does not reset the count. Anything unparsable as it is.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (net.isIPv6(address)) return `${expandIPv6(address).slice(0, 4).join(':')}::/64`;
  return address;
}

function expandIPv6(address: string): string[] {
  const halves = address.split('%')[0].split('::');
  const head = halves[0];
  const tail = halves.at(1);
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  if (right.at(-1)?.includes('.')) right.splice(-1, 1, '0', '0'); // an embedded IPv4 tail: its groups lie past /64
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((group) => Number.parseInt(group, 16).toString(16));
}

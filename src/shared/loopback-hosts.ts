/** Host names of a developer's own machine, as URL.hostname spells them (RFC 8252 §7.3 loopback). */
const LOOPBACK_HOSTNAMES: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

/** Whether a URL's hostname is this machine: where plain http is allowed. */
export function isLoopbackHostname(hostname: string): boolean {
  return LOOPBACK_HOSTNAMES.includes(hostname);
}

/** A socket's peer address on loopback (IPv4, IPv6, or IPv4 mapped into IPv6). */
export function isLoopbackAddress(address: string): boolean {
  return /^(127\.|::1$|::ffff:127\.)/.test(address);
}

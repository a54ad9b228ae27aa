import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';

/**
 * Where a request's client certificate comes from. With native TLS it is the connection's (the
 * listener asks every client for one and requires none); behind a TLS-terminating proxy it is
 * the header the proxy writes — `header` is set only when that proxy is trusted (TRUST_PROXY=1),
 * and a TLS connection never takes it from a header.
 */
export type CertificateSource = Readonly<{ header: string | undefined }>;

const seen = new WeakMap<IncomingMessage, X509Certificate | null>();

/** The client certificate of `req` (undefined: none presented, or the proxy's header is unreadable). Parsed once a request. */
export function requestCertificate(req: IncomingMessage, source: CertificateSource): X509Certificate | undefined {
  let certificate = seen.get(req);
  if (certificate === undefined) {
    certificate = (req.socket instanceof TLSSocket ? req.socket.getPeerX509Certificate() : fromHeader(req, source.header)) ?? null;
    seen.set(req, certificate);
  }
  return certificate ?? undefined;
}

function fromHeader(req: IncomingMessage, header: string | undefined): X509Certificate | undefined {
  if (!header) return undefined;
  const value = req.headers[header];
  return typeof value === 'string' && value !== '' ? forwardedCertificate(value) : undefined;
}

const PEM = /^-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----\s*$/;

/**
 * A certificate as proxies forward it: URL-encoded PEM (nginx `$ssl_client_escaped_cert`, AWS
 * ALB), PEM (newlines kept, or folded into spaces or tabs), or base64 DER. Only the first
 * certificate counts (nginx forwards the leaf). Anything else is no certificate.
 */
export function forwardedCertificate(value: string): X509Certificate | undefined {
  let text = value.trim();
  if (text.includes('%')) {
    try {
      text = decodeURIComponent(text).trim();
    } catch {
      return undefined;
    }
  }
  const pem = PEM.exec(text.replace(/(-----END CERTIFICATE-----)[\s\S]*$/, '$1'));
  const base64 = (pem ? pem[1] : text).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return undefined;
  try {
    return new X509Certificate(Buffer.from(base64, 'base64'));
  } catch {
    return undefined;
  }
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

const validAt = (certificate: X509Certificate, now: number) =>
  certificate.validFromDate.getTime() <= now && now <= certificate.validToDate.getTime();

/**
 * RFC 8705 §2.1 (PKI mutual TLS): whether `certificate` was issued by one of `authorities`
 * (TLS_CLIENT_CA; its issuer names it and its signature verifies with that CA's key), both being
 * within their validity at `now`, and whether it is an end-entity certificate fit for client
 * authentication (not a CA; an extended key usage, when present, allows clientAuth). The same
 * rule for a native TLS connection and a proxy's header: the TLS handshake's own verdict
 * (`socket.authorized`) is not used, so both paths accept exactly the same certificates.
 * Revocation (CRL, OCSP) is not checked: remove or change the partner instead.
 */
export function issuedByTrusted(certificate: X509Certificate, authorities: readonly X509Certificate[], now = Date.now()): boolean {
  if (certificate.ca || !validAt(certificate, now)) return false;
  const usages = certificate.keyUsage as string[] | undefined;
  if (usages?.length && !usages.includes(CLIENT_AUTH) && !usages.includes(ANY_EXTENDED_KEY_USAGE)) return false;
  return authorities.some(
    (authority) => validAt(authority, now) && certificate.checkIssued(authority) && certificate.verify(authority.publicKey),
  );
}

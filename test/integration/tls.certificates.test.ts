import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { forwardedCertificate, issuedByTrusted } from '../../src/shared/client-certificate.ts';
import { subjectMatches } from '../../src/shared/distinguished-name.ts';
import { tempDir } from '../support/harness.ts';
import { makeClientCa, makeSelfSignedCertificate, makeTestCertificates, type ClientCa, type ClientCertificate } from '../support/tls.ts';

// The rules of src/shared/client-certificate.ts and distinguished-name.ts on real certificates
// made by openssl (in process, no server): what a header may carry, which certificates a
// TLS_CLIENT_CA vouches for, and when a subject is the registered DN.

let dir: string;
let ca: ClientCa;
let otherCa: ClientCa;
let partner: ClientCertificate;
const x509 = (pem: string) => new X509Certificate(pem);

beforeAll(() => {
  dir = tempDir('portcullis-certs-');
  ca = makeClientCa(dir, 'partner-ca');
  otherCa = makeClientCa(dir, 'other-ca');
  partner = ca.issue('acme', '/C=GB/O=Acme Bank, Ltd/OU=Payments/CN=acme-client');
});

describe('a certificate forwarded in a header', () => {
  const body = () =>
    partner.cert
      .replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
      .replace(/\s+/g, '')
      .trim();

  test.each([
    ['URL-encoded PEM (nginx $ssl_client_escaped_cert)', () => encodeURIComponent(partner.cert)],
    ['PEM', () => partner.cert],
    ['PEM folded into one line', () => partner.cert.replace(/\n/g, ' ')],
    ['PEM with tab-indented lines (nginx $ssl_client_cert)', () => partner.cert.trim().replace(/\n/g, '\n\t')],
    ['base64 DER', body],
    ['a chain: the first certificate counts', () => encodeURIComponent(partner.cert + ca.ca)],
  ])('%s', (_, value) => {
    expect(forwardedCertificate(value())?.fingerprint256).toBe(x509(partner.cert).fingerprint256);
  });

  test.each([
    ['empty', ''],
    ['not base64', 'hello, world'],
    ['bad URL encoding', '%E0%A4%A'],
    ['base64 of no certificate', Buffer.from('no certificate here').toString('base64')],
    ['a truncated PEM', 'truncated'],
  ])('%s: no certificate', (_, value) => {
    expect(forwardedCertificate(value === 'truncated' ? partner.cert.slice(0, 200) : value)).toBeUndefined();
  });
});

describe('issued by a TLS_CLIENT_CA', () => {
  test('a certificate of that CA, within its validity', () => {
    expect(issuedByTrusted(x509(partner.cert), [x509(ca.ca)])).toBe(true);
    expect(issuedByTrusted(x509(partner.cert), [x509(otherCa.ca), x509(ca.ca)])).toBe(true);
  });

  test('refused: another CA, an expired certificate, one not yet valid, a CA certificate, a self-signed one, a server certificate', () => {
    const trusted = [x509(ca.ca)];
    expect(issuedByTrusted(x509(otherCa.issue('stranger', '/CN=acme-client').cert), trusted)).toBe(false);
    expect(issuedByTrusted(x509(ca.issue('expired', '/CN=acme-client', { expired: true }).cert), trusted)).toBe(false);
    const leaf = x509(partner.cert);
    expect(issuedByTrusted(leaf, trusted, leaf.validFromDate.getTime() - 1000)).toBe(false);
    expect(issuedByTrusted(leaf, trusted, leaf.validToDate.getTime() + 1000)).toBe(false);
    expect(issuedByTrusted(x509(ca.ca), trusted)).toBe(false);
    expect(issuedByTrusted(x509(makeSelfSignedCertificate(dir, 'self', '/CN=acme-client').cert), trusted)).toBe(false);
    // a certificate for a TLS server (extendedKeyUsage serverAuth), issued by the CA trusted here
    const server = makeTestCertificates(tempDir('portcullis-server-cert-'));
    const serverLeaf = x509(fs.readFileSync(server.fullchainPath, 'utf8'));
    expect(issuedByTrusted(serverLeaf, [x509(server.ca)])).toBe(false);
  });
});

describe('the subject is the registered DN (RFC 4514)', () => {
  const leaf = () => x509(partner.cert);

  test.each([
    'CN=acme-client,OU=Payments,O=Acme Bank\\, Ltd,C=GB',
    'cn=ACME-Client, ou=payments, o=acme bank\\, ltd, c=gb',
    'CN=acme-client;OU=Payments;O=Acme Bank\\2C Ltd;C=GB',
    '2.5.4.3=acme-client,OID.2.5.4.11=Payments,O=Acme  Bank\\, Ltd,C=GB',
    'CN=#0c0b61636d652d636c69656e74,OU=Payments,O=Acme Bank\\, Ltd,C=GB',
  ])('matches %s', (dn) => {
    expect(subjectMatches(leaf(), dn)).toBe(true);
  });

  test.each([
    ['the certificate’s order (C first)', 'C=GB,O=Acme Bank\\, Ltd,OU=Payments,CN=acme-client'],
    ['an RDN missing', 'CN=acme-client,O=Acme Bank\\, Ltd,C=GB'],
    ['an RDN more', 'CN=acme-client,OU=Payments,O=Acme Bank\\, Ltd,L=London,C=GB'],
    ['another value', 'CN=acme-client,OU=Payments,O=Acme Bank,C=GB'],
    ['another type', 'CN=acme-client,OU=Payments,L=Acme Bank\\, Ltd,C=GB'],
    ['the comma unescaped', 'CN=acme-client,OU=Payments,O=Acme Bank, Ltd,C=GB'],
    ['an unknown type', 'XX=acme-client,OU=Payments,O=Acme Bank\\, Ltd,C=GB'],
    ['a trailing separator', 'CN=acme-client,OU=Payments,O=Acme Bank\\, Ltd,C=GB,'],
    ['empty', ''],
  ])('does not match %s', (_, dn) => {
    expect(subjectMatches(leaf(), dn)).toBe(false);
  });

  test('a multi-valued RDN matches in any order of its values, and only as one RDN', () => {
    const multi = x509(ca.issue('multi', '/C=GB/O=Acme/OU=Payments+UID=42/CN=acme-client').cert);
    expect(subjectMatches(multi, 'CN=acme-client,OU=Payments+UID=42,O=Acme,C=GB')).toBe(true);
    expect(subjectMatches(multi, 'CN=acme-client,UID=42+OU=Payments,O=Acme,C=GB')).toBe(true);
    expect(subjectMatches(multi, 'CN=acme-client,OU=Payments,UID=42,O=Acme,C=GB')).toBe(false);
  });

  test('UTF-8 values, written as they are or as escaped bytes', () => {
    const utf8 = x509(ca.issue('utf8', '/C=DE/O=Zahlungsdienst Müller/CN=müller-client').cert);
    expect(subjectMatches(utf8, 'CN=müller-client,O=Zahlungsdienst Müller,C=DE')).toBe(true);
    expect(subjectMatches(utf8, 'CN=m\\C3\\BCller-client,O=ZAHLUNGSDIENST MÜLLER,C=DE')).toBe(true);
    expect(subjectMatches(utf8, 'CN=muller-client,O=Zahlungsdienst Muller,C=DE')).toBe(false);
  });
});

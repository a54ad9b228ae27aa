import type { X509Certificate } from 'node:crypto';

/**
 * Distinguished names compared as names, not as text (RFC 8705 §2.1.2: `tls_client_auth_subject_dn`
 * is "the expected subject distinguished name of the certificate, in the string representation
 * defined in RFC 4514"). The registered string is parsed per RFC 4514 (escapes, hex pairs,
 * `#`-encoded values, multi-valued RDNs with `+`; as leniencies, spaces around separators and
 * `;` for `,`), the certificate's subject is read from its DER, and the two match when they have
 * the same RDNs in the same order (RFC 4514 writes the last RDN of the certificate first), each
 * with the same attribute types (a short name and its OID are the same type) and values equal
 * under X.520 caseIgnoreMatch (Unicode NFKC, case folded, insignificant spaces removed).
 */

/** Attribute types by the names RFC 4514 §3 and common certificate profiles give them. */
const TYPES: Readonly<Record<string, string>> = {
  CN: '2.5.4.3',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  C: '2.5.4.6',
  STREET: '2.5.4.9',
  DC: '0.9.2342.19200300.100.1.25',
  UID: '0.9.2342.19200300.100.1.1',
  SN: '2.5.4.4',
  SURNAME: '2.5.4.4',
  SERIALNUMBER: '2.5.4.5',
  TITLE: '2.5.4.12',
  BUSINESSCATEGORY: '2.5.4.15',
  POSTALCODE: '2.5.4.17',
  GIVENNAME: '2.5.4.42',
  GN: '2.5.4.42',
  ORGANIZATIONIDENTIFIER: '2.5.4.97',
  EMAILADDRESS: '1.2.840.113549.1.9.1',
  E: '1.2.840.113549.1.9.1',
  JURISDICTIONC: '1.3.6.1.4.1.311.60.2.1.3',
};

/** One attribute: its type as an OID and its value (text, or `#hex` of the DER of a non-string value). */
type Ava = Readonly<{ type: string; value: string }>;
type Rdn = readonly Ava[];

/** Whether `certificate`'s subject is the DN `expected` (RFC 4514 string form); an unparsable `expected` matches nothing. */
export function subjectMatches(certificate: X509Certificate, expected: string): boolean {
  let wanted: Rdn[];
  let actual: Rdn[];
  try {
    wanted = parseDn(expected);
    actual = subjectOf(certificate.raw).reverse();
  } catch {
    return false;
  }
  return wanted.length === actual.length && wanted.every((rdn, index) => sameRdn(rdn, actual[index]));
}

/** Whether `text` is a DN this module can compare (RFC 4514, attribute types it knows by name, or OIDs). */
export function isDistinguishedName(text: string): boolean {
  try {
    parseDn(text);
    return true;
  } catch {
    return false;
  }
}

function sameRdn(a: Rdn, b: Rdn): boolean {
  if (a.length !== b.length) return false;
  const keys = (rdn: Rdn) => rdn.map((ava) => `${ava.type}=${normalise(ava.value)}`).sort();
  const [left, right] = [keys(a), keys(b)];
  return left.every((key, index) => key === right[index]);
}

/** caseIgnoreMatch, as LDAP string preparation approximates it. */
function normalise(value: string): string {
  if (value.startsWith('#')) return value.toLowerCase();
  return value.normalize('NFKC').toLowerCase().trim().replace(/\s+/g, ' ');
}

// ---------------------------------------------------------------------------------------------
// RFC 4514 strings

function typeOf(raw: string): string {
  const name = raw
    .trim()
    .toUpperCase()
    .replace(/^OID\./, '');
  if (/^\d+(\.\d+)+$/.test(name)) return name;
  const oid = TYPES[name];
  if (!oid) throw new Error(`unknown attribute type ${raw}`);
  return oid;
}

/** The RDNs of an RFC 4514 string, in the string's order (most specific first). */
function parseDn(text: string): Rdn[] {
  const rdns: Rdn[] = [];
  let rdn: Ava[] = [];
  let i = 0;
  while (i < text.length) {
    const equals = text.indexOf('=', i);
    if (equals < 0) throw new Error('attribute without a value');
    const type = typeOf(text.slice(i, equals));
    const { value, next } = readValue(text, equals + 1);
    rdn.push({ type, value });
    i = next;
    if (i >= text.length) {
      rdns.push(rdn);
      rdn = [];
      break;
    }
    const separator = text[i];
    i += 1;
    if (separator === '+') continue;
    rdns.push(rdn);
    rdn = [];
    if (i >= text.length) throw new Error('a DN ends with a separator');
  }
  if (rdn.length || rdns.length === 0) throw new Error('incomplete DN');
  return rdns;
}

const SPECIAL = new Set([',', '+', '"', '\\', '<', '>', ';', '=', ' ', '#']);

/** One value from `start`: its text, and where the separator after it is (or the end). */
function readValue(text: string, start: number): { value: string; next: number } {
  let i = start;
  while (text[i] === ' ') i += 1;
  if (text[i] === '#') {
    const match = /^#([0-9A-Fa-f]{2})+/.exec(text.slice(i));
    if (!match) throw new Error('bad #hex value');
    const end = skipSpaces(text, i + match[0].length);
    return { value: hexValue(Buffer.from(match[0].slice(1), 'hex')), next: end };
  }
  const bytes: number[] = [];
  const push = (chunk: string) => bytes.push(...Buffer.from(chunk, 'utf8'));
  let trailingSpaces = 0;
  while (i < text.length && text[i] !== ',' && text[i] !== '+' && text[i] !== ';') {
    const char = text[i];
    if (char === '\\') {
      const pair = text.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(pair)) {
        bytes.push(parseInt(pair, 16));
        i += 3;
      } else if (SPECIAL.has(text[i + 1])) {
        push(text[i + 1]);
        i += 2;
      } else throw new Error('bad escape');
      trailingSpaces = 0;
      continue;
    }
    push(char);
    trailingSpaces = char === ' ' ? trailingSpaces + 1 : 0;
    i += char.length;
  }
  const value = Buffer.from(bytes).toString('utf8');
  return { value: value.slice(0, value.length - trailingSpaces), next: i };
}

function skipSpaces(text: string, from: number): number {
  let i = from;
  while (text[i] === ' ') i += 1;
  return i;
}

/** A `#hex` value: the BER of an attribute value; a string type is compared by its text. */
function hexValue(der: Buffer): string {
  return valueOf(der, readTlv(der, 0));
}

// ---------------------------------------------------------------------------------------------
// DER: just enough to read a certificate's subject

type Tlv = Readonly<{ tag: number; start: number; end: number; headerStart: number }>;

function readTlv(der: Buffer, offset: number): Tlv {
  if (offset + 2 > der.length) throw new Error('truncated DER');
  const tag = der[offset];
  let length = der[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let k = 0; k < count; k += 1) length = length * 256 + der[start + k];
    start += count;
  }
  if (start + length > der.length) throw new Error('truncated DER');
  return { tag, start, end: start + length, headerStart: offset };
}

function childrenOf(der: Buffer, parent: Tlv): Tlv[] {
  const children: Tlv[] = [];
  for (let offset = parent.start; offset < parent.end;) {
    const child = readTlv(der, offset);
    children.push(child);
    offset = child.end;
  }
  return children;
}

function oidOf(bytes: Buffer): string {
  const parts = [Math.min(2, Math.floor(bytes[0] / 40)), bytes[0] - Math.min(2, Math.floor(bytes[0] / 40)) * 40];
  let value = 0;
  for (const byte of bytes.subarray(1)) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

function valueOf(der: Buffer, tlv: Tlv): string {
  const content = der.subarray(tlv.start, tlv.end);
  switch (tlv.tag) {
    case 0x0c: // UTF8String
    case 0x12: // NumericString
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x1a: // VisibleString
      return content.toString('utf8');
    case 0x14: // TeletexString (as Latin-1, as OpenSSL shows it)
      return content.toString('latin1');
    case 0x1e: // BMPString
      return Buffer.from(content).swap16().toString('utf16le');
    case 0x1c: // UniversalString
      return String.fromCodePoint(...Array.from({ length: content.length / 4 }, (_, k) => content.readUInt32BE(k * 4)));
    default:
      return `#${der.subarray(tlv.headerStart, tlv.end).toString('hex')}`;
  }
}

/** The subject's RDNs in certificate order (least specific first). */
function subjectOf(der: Buffer): Rdn[] {
  const certificate = readTlv(der, 0);
  const tbs = childrenOf(der, certificate)[0];
  const fields = childrenOf(der, tbs);
  const subject = fields[fields[0].tag === 0xa0 ? 5 : 4];
  return childrenOf(der, subject).map((set) =>
    childrenOf(der, set).map((attribute) => {
      const [type, value] = childrenOf(der, attribute);
      return { type: oidOf(der.subarray(type.start, type.end)), value: valueOf(der, value) };
    }),
  );
}

import fs from 'node:fs';

/** What the payments API needs to know, read once from the environment. */
export type ApiConfig = Readonly<{
  /** HTTP(S) and WebSocket port (0: any free port) */
  port: number;
  /** MQTT port (0: any free port) */
  mqttPort: number;
  /** the Portcullis issuer URL: tokens must carry it as `iss`; its discovery document says where the JWKS and introspection are */
  issuer: string;
  /** this API's URI as registered with `portcullis resource create --uri`: tokens must carry it as `aud` */
  audience: string;
  /** the API's own client (`resource create|update --introspector`), for opaque tokens; without it opaque tokens are refused */
  introspection?: Readonly<{ clientId: string; clientSecret: string }>;
  /** PEM certificate chain and key: serve HTTPS and MQTT over TLS, and ask clients for certificates (certificate-bound tokens) */
  tls?: Readonly<{ cert: string; key: string }>;
}>;

export class ConfigError extends Error {}

/** The variables, each with what it means: `--help` and the README say the same. */
export const VARIABLES = {
  PORT: 'HTTP(S) and WebSocket port (default 4000)',
  MQTT_PORT: 'MQTT port (default 1883)',
  PORTCULLIS_ISSUER: 'the Portcullis issuer URL (required); http only for a loopback host',
  API_AUDIENCE: 'this API’s URI as registered with `portcullis resource create --uri` (required)',
  INTROSPECTION_CLIENT_ID:
    'the API’s introspection client (`resource create|update --introspector`): opaque tokens are accepted only with it',
  INTROSPECTION_CLIENT_SECRET: 'its secret (required with INTROSPECTION_CLIENT_ID)',
  TLS_CERT: 'PEM certificate chain: serve HTTPS and MQTT over TLS, and ask clients for a certificate (certificate-bound tokens)',
  TLS_KEY: 'PEM private key of TLS_CERT',
} as const;

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

function port(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const text = env[name] || String(fallback);
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > 65535) throw new ConfigError(`${name} must be a port number (0–65535), not "${text}"`);
  return value;
}

function url(env: Record<string, string | undefined>, name: string): URL {
  const text = env[name];
  if (!text) throw new ConfigError(`${name} is required (${VARIABLES[name as keyof typeof VARIABLES]})`);
  const parsed = URL.parse(text);
  if (!parsed || !['https:', 'http:'].includes(parsed.protocol)) throw new ConfigError(`${name} must be an http(s) URL, not "${text}"`);
  return parsed;
}

function pem(env: Record<string, string | undefined>, name: string): string {
  const file = env[name] ?? '';
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${name}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

/** The configuration from `env`; a bad or missing value is a ConfigError naming the variable. */
export function loadConfig(env: Record<string, string | undefined>): ApiConfig {
  const issuer = url(env, 'PORTCULLIS_ISSUER');
  if (issuer.protocol === 'http:' && !LOOPBACK.has(issuer.hostname))
    throw new ConfigError(`PORTCULLIS_ISSUER must be https (http only for localhost), not "${issuer.href}"`);
  const audience = url(env, 'API_AUDIENCE');
  const clientId = env.INTROSPECTION_CLIENT_ID;
  const clientSecret = env.INTROSPECTION_CLIENT_SECRET;
  if (Boolean(clientId) !== Boolean(clientSecret))
    throw new ConfigError('INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET go together: set both or neither');
  if (Boolean(env.TLS_CERT) !== Boolean(env.TLS_KEY)) throw new ConfigError('TLS_CERT and TLS_KEY go together: set both or neither');
  return {
    port: port(env, 'PORT', 4000),
    mqttPort: port(env, 'MQTT_PORT', 1883),
    issuer: issuer.href.replace(/\/$/, ''),
    audience: audience.href === `${env.API_AUDIENCE ?? ''}/` ? audience.href.slice(0, -1) : audience.href, // as `aud` carries it
    ...(clientId && clientSecret ? { introspection: { clientId, clientSecret } } : {}),
    ...(env.TLS_CERT ? { tls: { cert: pem(env, 'TLS_CERT'), key: pem(env, 'TLS_KEY') } } : {}),
  };
}

import type { webcrypto } from 'node:crypto';
import { createHash } from 'node:crypto';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { loadConfig } from '../../examples/payments-api/src/config.ts';
import { startPaymentsApi, type RunningApi, type StartOptions } from '../../examples/payments-api/src/server.ts';
import { dpopProof } from './fapi.ts';

// The reference resource server (examples/payments-api) in the test's own process, and a client
// for each of its transports: HTTP, the WebSocket upgrade, MQTT CONNECT / SUBSCRIBE.

export async function startExample(env: Record<string, string>, options: StartOptions = {}): Promise<RunningApi> {
  const config = loadConfig({ PORT: '0', MQTT_PORT: '0', ...env });
  return startPaymentsApi(config, { log: () => undefined, sweepMs: 100, recheckMs: 300, ...options });
}

export type Answer = { status: number; headers: Headers; body: Record<string, any> };

/** A request to the example with `authorization` (and a DPoP proof when given). */
export async function call(
  api: RunningApi,
  method: 'GET' | 'POST',
  path: string,
  authorization: string | undefined,
  options: { body?: object; dpop?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (authorization) headers.authorization = authorization;
  if (options.dpop) headers.dpop = options.dpop;
  if (options.body) headers['content-type'] = 'application/json';
  const res = await fetch(`${api.url}${path}`, { method, headers, body: options.body ? JSON.stringify(options.body) : undefined });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, any>) : {} };
}

export type Socket = {
  ws: WebSocket;
  messages: Record<string, any>[];
  closed: Promise<{ code: number; reason: string }>;
  next(type: string): Promise<Record<string, any>>;
};

/** The WebSocket upgrade to /events: an open socket, or the refusal's status, headers and body. */
export function openEvents(
  api: RunningApi,
  headers: Record<string, string>,
): Promise<
  { socket: Socket } | { refused: { status: number; headers: Record<string, string | string[] | undefined>; body: Record<string, any> } }
> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${api.url.replace(/^http/, 'ws')}/events`, { headers });
    const messages: Record<string, any>[] = [];
    const waiters: Array<() => void> = [];
    ws.on('message', (data: Buffer) => {
      messages.push(JSON.parse(String(data)));
      for (const waiter of waiters.splice(0)) waiter();
    });
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.on('close', (code, reason) => done({ code, reason: String(reason) })),
    );
    const next = (type: string) =>
      new Promise<Record<string, any>>((done, fail) => {
        const look = () => {
          const index = messages.findIndex((message) => message.type === type);
          if (index >= 0) done(messages.splice(index, 1)[0]);
          else waiters.push(look);
        };
        void closed.then(({ code }) => fail(new Error(`socket closed (${code}) before a ${type} message`)));
        look();
      });
    ws.on('open', () => resolve({ socket: { ws, messages, closed, next } }));
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({
          refused: { status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') },
        });
        ws.terminate();
      });
    });
    ws.on('error', (error) => {
      if (!error.message.includes('Unexpected server response')) reject(error);
    });
  });
}

/** MQTT CONNECT: the connected client, or the CONNACK return code of the refusal. */
export async function connectMqtt(
  api: RunningApi,
  username: string,
  password: string,
): Promise<{ client: mqtt.MqttClient } | { code: number }> {
  try {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${api.mqttPort}`, {
      username,
      password,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      protocolVersion: 4,
    });
    return { client };
  } catch (error) {
    return { code: (error as { code?: number }).code ?? -1 };
  }
}

/** A DPoP proof for a request to the example (with the nonce it gave, when there is one). */
export async function proofFor(keyPair: webcrypto.CryptoKeyPair, method: string, url: string, token: string, nonce?: string) {
  return dpopProof(keyPair, {
    htm: method,
    htu: url,
    ath: createHash('sha256').update(token).digest('base64url'),
    ...(nonce ? { nonce } : {}),
  });
}

/** Resolves when `client` is closed by the broker. */
export const mqttClosed = (client: mqtt.MqttClient) => new Promise<void>((resolve) => client.once('close', () => resolve()));

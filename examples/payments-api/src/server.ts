import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { paymentBus } from './bus.ts';
import type { ApiConfig } from './config.ts';
import { paymentEvents } from './events.ts';
import { paymentsApp } from './http.ts';
import { paymentsBroker } from './mqtt.ts';
import { paymentLedger } from './payments.ts';
import { sessionWatch } from './sessions.ts';
import { tokenVerifier, type VerifierOptions } from './tokens.ts';

export type RunningApi = Readonly<{
  /** http(s)://localhost:PORT */
  url: string;
  port: number;
  mqttPort: number;
  close(): Promise<void>;
}>;

export type StartOptions = VerifierOptions &
  Readonly<{
    /** how often sessions are checked for expiry (default 1 s) and opaque tokens re-introspected (default 10 s) */
    sweepMs?: number;
    recheckMs?: number;
    log?: (line: object) => void;
  }>;

const listen = (server: net.Server, port: number) =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve((server.address() as net.AddressInfo).port));
  });

/** Starts the HTTP(S) API with its WebSocket endpoint on `config.port` and the MQTT broker on `config.mqttPort`. */
export async function startPaymentsApi(config: ApiConfig, options: StartOptions = {}): Promise<RunningApi> {
  const now = options.now ?? Date.now;
  const log = options.log ?? ((line: object) => console.log(JSON.stringify({ time: new Date().toISOString(), ...line })));
  const verifier = tokenVerifier(config, { ...options, now });
  const sessions = sessionWatch(verifier, { now, sweepMs: options.sweepMs, recheckMs: options.recheckMs });
  const bus = paymentBus();
  const app = paymentsApp({ verifier, ledger: paymentLedger(now), bus, log });
  // with a certificate: HTTPS, asking every client for a certificate without requiring one
  // (certificate-bound tokens need it; who may connect is the token's business, not the CA's)
  const handler = app.callback() as http.RequestListener;
  const server = config.tls
    ? https.createServer({ ...config.tls, requestCert: true, rejectUnauthorized: false }, handler)
    : http.createServer(handler);
  const events = paymentEvents(server, { verifier, sessions, bus });
  const broker = await paymentsBroker({ verifier, sessions, bus, now, tls: config.tls, log });
  const port = await listen(server, config.port);
  const mqttPort = await listen(broker.server, config.mqttPort);
  return {
    url: `${config.tls ? 'https' : 'http'}://localhost:${port}`,
    port,
    mqttPort,
    async close() {
      sessions.close();
      events.close();
      await broker.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

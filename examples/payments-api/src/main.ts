// The payments API as a process: configuration from the environment (config.ts), one JSON line
// when listening, a one-line error and exit code 1 on bad configuration, SIGTERM/SIGINT stop it.
import { ConfigError, loadConfig } from './config.ts';
import { startPaymentsApi } from './server.ts';

try {
  const config = loadConfig(process.env);
  const api = await startPaymentsApi(config);
  console.log(
    JSON.stringify({
      time: new Date().toISOString(),
      level: 'info',
      msg: 'listening',
      url: api.url,
      mqtt_port: api.mqttPort,
      issuer: config.issuer,
      audience: config.audience,
    }),
  );
  const stop = () => void api.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  const message = error instanceof ConfigError || error instanceof Error ? error.message : String(error);
  console.error(`payments-api: ${message}`);
  process.exit(1);
}

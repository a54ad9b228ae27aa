// `npm run example:payments` (repository root) and `npm start` (this folder): installs the
// example's dependencies when they are missing (it is a workspace of the root package, so the
// root's `npm ci` normally has), then starts src/main.ts.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dependencies = ['koa', '@koa/router', 'ws', 'aedes', 'oauth4webapi', 'jose'];
const missing = dependencies.filter((name) => {
  try {
    import.meta.resolve(name);
    return false;
  } catch {
    return true;
  }
});
if (missing.length) {
  console.error(`payments-api: installing its dependencies (${missing.join(', ')} missing)…`);
  execFileSync('npm', ['install', '--no-audit', '--no-fund'], {
    cwd: path.join(here, '..', '..'),
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}
await import('./src/main.ts');

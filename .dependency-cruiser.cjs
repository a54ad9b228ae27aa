/**
 * The layering of src/, checked by `npm run lint:layers`. Imports point down this list:
 *
 *   main.ts, cli/portcullis.ts   entry points (main.ts is the composition root)
 *   cli/                         the `portcullis` command: domains + storage.ts, never the app
 *   cluster/                     node:cluster primary and its metrics IPC
 *   server.ts                    the HTTP server process: start, jobs, stop
 *   app.ts                       the HTTP app: middleware order, mounts
 *   admin/ account/ interactions/   HTTP surfaces: the consoles (/admin, /account) and the login pages
 *   http/                        HTTP pieces they share (console sign-in, form body; health, metrics, request log)
 *   oidc/                        oidc-provider options, its knex adapter, the swap holder
 *   storage.ts                   open the database, migrate, the KEK, re-seal: server and CLI share it
 *   accounts/ keys/ partners/ resources/ grants/ limits/   domains
 *   db/                          knex, migrations, the purge timer
 *   config/ log/                 env → Config; pino
 *   shared/                      small bottom modules, importing nothing else in src
 *
 * Roles: only db/ and `*.store.ts` run SQL; a service holds a `Db` only as a type.
 */
const DOMAINS = '^src/(accounts|keys|partners|resources|grants|limits|audit)/';
const ABOVE_DOMAINS = '^src/(oidc|interactions|admin|account|http|cli|cluster)/|^src/(app|server|storage|main)[.]ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle means two modules are one: merge them, or move what both need one layer down.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'shared-is-the-bottom',
      severity: 'error',
      comment: 'src/shared/ holds the bottom pieces: it imports nothing else in src.',
      from: { path: '^src/shared/' },
      to: { path: '^src/', pathNot: '^src/shared/' },
    },
    {
      name: 'config-and-log-import-only-shared',
      severity: 'error',
      from: { path: '^src/(config|log)/' },
      to: { path: '^src/', pathNot: '^src/(shared|config|log)/' },
    },
    {
      name: 'db-imports-no-domain',
      severity: 'error',
      comment: 'db/ knows tables exist, not what they mean: a domain hands db/ what it needs (e.g. the purges).',
      from: { path: '^src/db/' },
      to: { path: '^src/', pathNot: '^src/(db|shared|config|log)/' },
    },
    {
      name: 'domains-import-no-surface',
      severity: 'error',
      comment: 'Domains hold the rules; HTTP, the provider, the CLI and the process sit above them.',
      from: { path: DOMAINS },
      to: { path: ABOVE_DOMAINS },
    },
    {
      name: 'storage-imports-no-surface',
      severity: 'error',
      comment: 'storage.ts is shared by the CLI and the server: it must not load the provider or the app.',
      from: { path: '^src/storage[.]ts$' },
      to: { path: ABOVE_DOMAINS },
    },
    {
      name: 'oidc-imports-no-surface',
      severity: 'error',
      from: { path: '^src/oidc/' },
      to: { path: '^src/(interactions|admin|account|http|cli|cluster)/|^src/(app|server|storage|main)[.]ts$' },
    },
    {
      name: 'surfaces-import-no-app',
      severity: 'error',
      comment: 'admin/, account/, interactions/ and http/ are mounted by app.ts; they never reach up to it, the process or the CLI.',
      from: { path: '^src/(interactions|admin|account|http)/' },
      to: { path: '^src/(cli|cluster)/|^src/(app|server|storage|main)[.]ts$' },
    },
    {
      name: 'http-imports-no-interactions',
      severity: 'error',
      from: { path: '^src/http/' },
      to: { path: '^src/(interactions|admin|account|oidc)/' },
    },
    {
      name: 'app-is-below-the-process',
      severity: 'error',
      from: { path: '^src/app[.]ts$' },
      to: { path: '^src/cli/|^src/(server|storage|main)[.]ts$' },
    },
    {
      name: 'server-is-below-main',
      severity: 'error',
      from: { path: '^src/server[.]ts$' },
      to: { path: '^src/cli/|^src/main[.]ts$' },
    },
    {
      name: 'cli-never-loads-the-app',
      severity: 'error',
      comment: 'Every CLI command would otherwise load oidc-provider and the login pages.',
      from: { path: '^src/cli/' },
      to: { path: '^src/(oidc|interactions|admin|account|http|cluster)/|^src/(app|server|main)[.]ts$' },
    },
    {
      name: 'cluster-imports-only-config-and-log',
      severity: 'error',
      from: { path: '^src/cluster/' },
      to: { path: '^src/', pathNot: '^src/(cluster|config|log|shared)/' },
    },
    {
      name: 'only-stores-run-sql',
      severity: 'error',
      comment:
        'Only db/ and *.store.ts import knex. Elsewhere the type is `Db` (import type from db/knex.ts). ' +
        'Not even `import type` of knex itself: dependency-cruiser 18.7 files `import k, { type K } from "knex"` ' +
        'as type-only, so a type-only exception would let that run-time import through.',
      from: { path: '^src/', pathNot: '^src/db/|[.]store[.]ts$' },
      to: { path: 'node_modules/knex/' },
    },
    {
      name: 'only-stores-use-the-db-handle',
      severity: 'error',
      comment: 'Services take `Db` as a type to pass it to stores; run-time helpers of db/knex.ts are for stores and the wiring.',
      from: { path: '^src/', pathNot: '^src/db/|[.]store[.]ts$|^src/(app|storage)[.]ts$' },
      to: { path: '^src/db/knex[.]ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'stores-are-below-services',
      severity: 'error',
      from: { path: '[.]store[.]ts$' },
      to: { path: '[.](service|routes|middleware|job|step)[.]ts$' },
    },
    {
      name: 'services-import-no-http',
      severity: 'error',
      from: { path: '[.]service[.]ts$' },
      to: { path: '[.](routes|middleware|step)[.]ts$' },
    },
    {
      name: 'src-imports-no-tests',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|migrations)/' },
    },
    {
      name: 'no-dev-dependencies-at-run-time',
      severity: 'error',
      comment: 'src/ runs in production, where devDependencies are not installed.',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-orphans',
      severity: 'error',
      comment: 'A module nothing imports is dead code (entry points excepted).',
      from: { orphan: true, pathNot: '^src/main[.]ts$|^src/cli/portcullis[.]ts$|[.]d[.]ts$' },
      to: {},
    },
  ],
  options: {
    // recorded, not followed: so that an import of test/ or bench/ from src/ is still seen
    doNotFollow: { path: 'node_modules|^(test|bench|migrations)/' },
    // `import type` is seen as type-only (rules above allow those where a run-time import is not)
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};

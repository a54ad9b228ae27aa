// ts-jest in ESM mode: sources import siblings as `./x.ts` (Node 24 runs them without a build
// step); ts-jest rewrites those to `./x.js`, and the mapper sends them back to the .ts file.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      { useESM: true, tsconfig: { noEmit: false, allowImportingTsExtensions: true, rewriteRelativeImportExtensions: true } },
    ],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 30000,
  // `npm test -- --coverage` (as .ci/run does) prints a one-screen summary of src/ from V8's own
  // counters: no instrumentation pass, so the suite runs at nearly its normal speed.
  coverageProvider: 'v8',
  collectCoverageFrom: ['src/**/*.ts'],
  coverageReporters: ['text-summary'],
  // Jest's default on a 2-core machine is one worker (cores - 1). The files spend much of their
  // time waiting (on the database, on a key schedule, on the browser), so two overlap well.
  maxWorkers: 2,
  // PostgreSQL runs: one tag for the run's schemas, dropped at the end (test/support/pg.global.ts)
  globalSetup: '<rootDir>/test/support/pg.setup.ts',
  globalTeardown: '<rootDir>/test/support/pg.teardown.ts',
};

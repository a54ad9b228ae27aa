// ESLint with typescript-eslint's strict, type-checked rules over everything tsc checks
// (src, test, bench, migrations). Two deliberate relaxations, said here so they stay deliberate:
// numbers and booleans may be interpolated into template strings, and a void call may be the
// body of an arrow shorthand (`() => resolve()`). Harness code (test/, bench/) reads untyped JSON
// from HTTP answers and CLI output, and migrations read untyped rows (and are never edited once
// landed), so the no-unsafe-* family, explicit any and non-null assertions are off there: in a test a wrong
// shape fails the assertion that reads it.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/', 'coverage/', 'data/', 'keys/', 'examples/*/node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allow: [{ from: 'package', package: 'url', name: ['URLSearchParams', 'URL'] }] },
      ],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // openid-client marks it deprecated only so it stands out; tests and benches talk plain
      // HTTP to their own server on loopback
      '@typescript-eslint/no-deprecated': [
        'error',
        {
          allow: [
            { from: 'package', package: 'openid-client', name: 'allowInsecureRequests' },
            { from: 'package', package: 'oauth4webapi', name: 'allowInsecureRequests' },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'migrations/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // `afterAll(() => server?.stop())`: teardown must survive a beforeAll that failed half-way,
    // which a `let server: Server` declaration cannot say
    files: ['test/**/*.ts'],
    // and an `async () => value` stands in for an interface that returns a promise
    rules: { '@typescript-eslint/no-unnecessary-condition': 'off', '@typescript-eslint/require-await': 'off' },
  },
  { files: ['**/*.js', '**/*.cjs', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);

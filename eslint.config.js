// Lint for src/, test/, bench/ and scripts/: the recommended and type-aware rules that catch real bugs
// (floating promises, misused promises), not style; tsc already enforces strictness.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/require-await': 'off', '@typescript-eslint/no-base-to-string': 'off' } },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
  // examples/browser/ is plain browser JavaScript, served as is: no types, the browser's globals.
  { files: ['examples/browser/**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['examples/browser/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: { document: 'readonly', WebSocket: 'readonly', crypto: 'readonly', btoa: 'readonly', TextEncoder: 'readonly' },
    },
  },
  // scripts/ and examples/ hold plain Node ESM that runs uncompiled (outside tsconfig): no type-aware rules.
  { files: ['scripts/**/*.mjs', 'examples/**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['scripts/**/*.mjs', 'examples/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URL: 'readonly' } },
  },
);

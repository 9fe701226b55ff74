import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'cdk.out/', 'coverage/', '**/dist/', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.mts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    files: ['web/src/**/*.{ts,tsx}', 'packages/client/src/react/**/*.{ts,tsx}', 'test/**/*.tsx'],
    ...reactHooks.configs.flat.recommended,
  },
  {
    // An AudioWorklet module: its own global scope.
    files: ['web/public/*.js'],
    languageOptions: { globals: { AudioWorkletProcessor: 'readonly', registerProcessor: 'readonly' } },
  },
  {
    // Tests and the emulator walk untyped CloudFormation and AWS wire JSON.
    files: ['test/**/*.ts', 'local/emulator/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The AWS emulator stands in for AWS: it knows nothing of the application it runs (only Node and npm packages).
    files: ['local/emulator/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['../*', '../**'], message: 'local/emulator/ imports nothing outside itself: it emulates AWS, not Gatehouse.' }] },
      ],
    },
  },
  {
    // Wire contracts are imported by browsers as well as by Node: nothing here may need Node or a package.
    files: ['protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '^(?!\\./)', message: 'protocol/ is browser-safe and self-contained: import only ./ files of protocol/ (no Node built-ins, no packages).' },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'Buffer', message: 'protocol/ runs in browsers: use TextEncoder.' }, { name: 'process', message: 'protocol/ runs in browsers.' }, { name: 'require', message: 'protocol/ runs in browsers.' }],
    },
  },
  {
    // The package's browser entry (everything `@gatehouse/client` exports) runs in pages: no Node, no Node packages.
    files: ['packages/client/src/**/*.{ts,tsx}'],
    ignores: ['packages/client/src/{node,auth,wav,cli,local-config}.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(node:|ws$|@aws-sdk/)', message: '@gatehouse/client runs in browsers: Node-only code goes in node.ts (the ./node entry).' }] }],
      'no-restricted-globals': ['error', { name: 'Buffer', message: '@gatehouse/client runs in browsers: use TextEncoder.' }, { name: 'process', message: '@gatehouse/client runs in browsers.' }],
    },
  },
  {
    // The client is consumed as a package, as its users consume it: never by a path into its sources.
    files: ['{web,test,bench,local,lib,lambda,speech,bin}/**/*.{ts,tsx,mts}'],
    ignores: ['local/emulator/**'], // has its own, stricter rule
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: 'packages/client', message: "import '@gatehouse/client' (or '@gatehouse/client/node'), not its files." }] }],
    },
  },
  {
    // The package's examples: plain JavaScript, as its users write it.
    files: ['packages/client/examples/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: { 'no-console': 'off' },
  },
  {
    files: ['packages/client/examples/page.js'],
    languageOptions: { sourceType: 'module', globals: { document: 'readonly', fetch: 'readonly' } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly', __dirname: 'readonly', process: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['*.js', '*.mjs'],
    languageOptions: { globals: { module: 'writable', require: 'readonly', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);

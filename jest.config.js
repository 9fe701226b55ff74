/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // Tests import @gatehouse/client from its sources (the workspace link), never from a possibly stale build.
  testEnvironmentOptions: { customExportConditions: ['gatehouse-source', 'node', 'node-addons'] },
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts', '**/*.test.tsx'],
  // Type-checking happens once in `npm run typecheck`; ts-jest only transpiles (isolatedModules in tsconfig).
  transform: { '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  globalSetup: '<rootDir>/test/global-setup.ts',
  setupFiles: ['<rootDir>/test/setup-env.ts'],
  testTimeout: 30000,
};

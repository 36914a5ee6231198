import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The external-plugin kit runs only through `npm run conformance`, which names the plugin.
    exclude: [...configDefaults.exclude, ...(process.env.COCAINE_CONFORMANCE_PLUGIN ? [] : ['test/conformance/external.test.ts'])],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Real processes everywhere on a 2-core machine: keep file-level parallelism modest.
    maxWorkers: 2,
    fileParallelism: true,
    reporters: ['default'],
  },
});

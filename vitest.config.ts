import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The external-plugin kit runs only through `npm run conformance`, which names the plugin.
    exclude: [...configDefaults.exclude, ...(process.env.COCAINE_CONFORMANCE_PLUGIN ? [] : ['test/conformance/external.test.ts'])],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Real processes, servers and timing bounds everywhere on a 2-core machine: one file at a time,
    // so no file's load (a 3-node NATS cluster, dockerd) makes another's deadlines flaky.
    maxWorkers: 1,
    fileParallelism: false,
    reporters: ['default'],
  },
});

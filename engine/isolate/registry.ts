import type { Isolate } from './types.js';

/** The isolate types this engine can create; profiles naming another are refused at upload. */
export const ISOLATE_TYPES = ['process', 'cgroup', 'docker'] as const;

export interface IsolateRegistryOptions {
  engineId: string;
  /** Directory for isolate bookkeeping (pid records) that outlives a crashed engine. */
  stateDir: string;
  dockerSocket: string;
  dockerImage: string;
}

/**
 * Isolates by type, created on first use (a process-only deployment never touches cgroups or
 * Docker). `cleanupOrphans` at start removes what a crashed engine with this node id left.
 */
export class IsolateRegistry {
  private readonly isolates = new Map<string, Promise<Isolate>>();

  constructor(private readonly options: IsolateRegistryOptions) {}

  get(type: string): Promise<Isolate> {
    let isolate = this.isolates.get(type);
    if (!isolate) {
      isolate = this.create(type);
      this.isolates.set(type, isolate);
      isolate.catch(() => this.isolates.delete(type));
    }
    return isolate;
  }

  private async create(type: string): Promise<Isolate> {
    const { engineId, stateDir, dockerSocket, dockerImage } = this.options;
    switch (type) {
      case 'process': {
        const { ProcessIsolate } = await import('./process.js');
        return new ProcessIsolate({ runDir: stateDir, engineId });
      }
      case 'cgroup': {
        const { CgroupIsolate } = await import('./cgroup.js');
        return new CgroupIsolate({ runDir: stateDir, engineId });
      }
      case 'docker': {
        const { DockerIsolate } = await import('./docker.js');
        return new DockerIsolate({ socketPath: dockerSocket, engineId, runDir: stateDir, defaultImage: dockerImage || undefined });
      }
      default:
        throw new Error(`unknown isolate type "${type}" (known: ${ISOLATE_TYPES.join(', ')})`);
    }
  }

  /** Cleans what a previous run left: always process records; cgroup and docker when present. */
  async cleanupOrphans(types: string[]): Promise<string[]> {
    const problems: string[] = [];
    for (const type of types) {
      try {
        const isolate = await this.get(type);
        await isolate.cleanupOrphans(this.options.engineId);
      } catch (error) {
        problems.push(`${type} isolate: ${(error as Error).message}`);
      }
    }
    return problems;
  }

  async close(): Promise<void> {
    const isolates = await Promise.allSettled(this.isolates.values());
    for (const result of isolates) if (result.status === 'fulfilled') await result.value.close();
  }
}

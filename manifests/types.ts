/** What to run: stored with the app's tarball. */
export interface Manifest {
  name: string;
  /** Language plugin that runs the app (`node`, `python`, `perl`, `native`, or a third-party one). */
  plugin: string;
  /** Path of the app's entry file inside the tarball (module, script, or shared object). */
  entrypoint: string;
  /** Environment variables given to every worker of the app. */
  environment: Record<string, string>;
  /** Declared events; when present, other events are refused with NOT_FOUND before any spawn. */
  events?: Record<string, EventDeclaration>;
  /** Free-form description. */
  description?: string;
}

export interface EventDeclaration {
  /** Per-event deadline in seconds (overrides the profile's request-timeout). */
  timeout?: number;
}

export interface IsolateSpec {
  type: string;
  args: Record<string, unknown>;
}

/** Pool settings, Cocaine's names. Timeouts are in seconds (fractions allowed). */
export interface Profile {
  'pool-limit': number;
  'queue-limit': number;
  concurrency: number;
  'grow-threshold': number;
  'startup-timeout': number;
  'heartbeat-timeout': number;
  'idle-timeout': number;
  'termination-timeout': number;
  'request-timeout': number;
  'crashlog-limit': number;
  /** Consecutive failed starts after which the app is marked broken. */
  'crash-limit': number;
  isolate: IsolateSpec;
}

import type { EnqueueInput, Invocation, InvocationRequest, PlacementOptions } from '../api/facade.js';
import type { AppStore } from '../app-store/types.js';
import type { AppLogs } from '../pool/app-logs.js';
import type { EnqueueResult } from '../queue/types.js';
import type { Tracer } from '../trace/tracer.js';

/** What the services need from the engine: the same paths a gRPC client's requests take. */
export interface ServiceDeps {
  /** Router → app engine, like a gRPC Invoke. */
  invoke(request: InvocationRequest): Invocation;
  /** A call with a routing key, or a broadcast: placed on a node of the cluster (engine/api/placement.ts). */
  place(request: InvocationRequest, options: PlacementOptions): Invocation;
  /** Like a gRPC Enqueue (checks the app, then persists). */
  enqueue(input: EnqueueInput): Promise<EnqueueResult>;
  /** The app store (opened on first use). */
  appStore(): Promise<AppStore>;
  logsFor(app: string): AppLogs;
  maxCallDepth: number;
  /** Records a `call` / `emit` span under the handler's own (absent: headers are only forwarded). */
  tracer?: Tracer;
}

export const CALL_DEPTH_HEADER = 'cocaine-call-depth';
export const EVENT_ID_HEADER = 'cocaine-event-id';
export const TRACEPARENT_HEADER = 'traceparent';
export const TRACESTATE_HEADER = 'tracestate';

import { Match, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { MAX_RESULT_MESSAGE_BYTES } from '../api/call-utils.js';
import type { EngineFacade } from '../api/facade.js';
import { grpcStatusOf } from '../api/status.js';
import { durationText, headersField, nameField } from '../api/request-fields.js';
import { EngineError, InvalidInputError, toEngineError } from '../errors/index.js';
import { continueTrace, traceHeaders, withTraceHeaders } from '../trace/context.js';
import { tracedInvocation } from '../trace/traced-invocation.js';
import { NODE_HEADER } from '../api/placement.js';
import { nodeInvokeBase } from './node-invoke.js';

export const INVOKE_QUEUE_GROUP = 'cocaine-engine';
/** The `call` service's depth header (engine/services): kept on per-node requests between engines. */
const CALL_DEPTH_HEADER = 'cocaine-call-depth';

export const NatsHeader = {
  event: 'Cocaine-Event',
  timeoutMs: 'Cocaine-Timeout-Ms',
  seq: 'Cocaine-Seq',
  status: 'Cocaine-Status',
  errorCode: 'Cocaine-Error-Code',
  errorStatus: 'Cocaine-Error-Status',
  errorMessage: 'Cocaine-Error-Message',
} as const;

/**
 * Blocking calls over NATS request-reply (docs/nats-api.md): requests on `<prefix>.invoke.<app>`
 * with the event in the `Cocaine-Event` header, served by a queue group across engine nodes.
 * Each result chunk goes to the reply subject with `Cocaine-Seq`; a final empty message carries
 * `Cocaine-Status: ok` or `error` with the error's code, gRPC status and message.
 */
export class NatsInvokeService {
  private readonly subscription: Subscription;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly facade: EngineFacade,
    private readonly prefix: string,
    /**
     * `node`: serve this node's own subject (`<prefix>.node.<node>.invoke.<app>`, node-invoke.ts)
     * instead of the shared queue group, and tell the handler with the `cocaine-node` header.
     */
    private readonly options: { node?: string } = {},
  ) {
    const base = options.node === undefined ? `${prefix}.invoke.` : nodeInvokeBase(prefix, options.node);
    this.subscription = nc.subscribe(`${base}>`, {
      queue: options.node === undefined ? INVOKE_QUEUE_GROUP : undefined,
      callback: (error, msg) => {
        if (error || !msg.reply) return;
        const work = this.serve(msg, msg.subject.slice(base.length)).finally(() => this.inFlight.delete(work));
        this.inFlight.add(work);
      },
    });
  }

  private async serve(msg: Msg, app: string): Promise<void> {
    const reply = msg.reply as string;
    let seq = 0;
    // The caller's traceparent (message headers) is continued; the reply headers return the engine's span.
    const active = this.facade.traces?.tracer.begin(continueTrace((name) => msg.headers?.values(name, Match.IgnoreCase) ?? []).context, { kind: 'invoke', target: `${app}@${msg.headers?.get(NatsHeader.event) ?? ''}` });
    const returned = active ? traceHeaders(active.context) : undefined;
    const withTrace = (h: ReturnType<typeof natsHeaders>) => {
      if (returned) for (const [name, value] of Object.entries(returned)) if (value !== undefined) h.set(name, value);
      return h;
    };
    try {
      // The same field checks as the gRPC edge (api/request-fields.ts), named as NATS clients see them.
      nameField('app', app, 'subject');
      const event = msg.headers?.get(NatsHeader.event) ?? '';
      if (!event) throw new InvalidInputError('invalid_argument', `header ${NatsHeader.event} is required (the event to call on app "${app}")`, { field: NatsHeader.event });
      nameField('event', event, NatsHeader.event);
      const timeoutMs = durationText(msg.headers?.get(NatsHeader.timeoutMs), NatsHeader.timeoutMs);
      const passed: Record<string, string> = {};
      if (msg.headers) {
        for (const [key, values] of msg.headers) {
          const lower = key.toLowerCase();
          if (!lower.startsWith('cocaine-')) passed[key] = values[0] ?? '';
          // A routed call made by a handler (`call`) keeps its depth across nodes, so a cycle still ends.
          else if (this.options.node !== undefined && lower === CALL_DEPTH_HEADER) passed[lower] = values[0] ?? '';
        }
      }
      headersField(passed, 'headers');
      if (this.options.node !== undefined) passed[NODE_HEADER] = this.options.node;
      const request = { app, event, headers: active ? withTraceHeaders(passed, active.context) : passed, deadline: timeoutMs > 0 ? Date.now() + timeoutMs : 0 };
      const invocation = active ? tracedInvocation(this.facade.invoke(request), active) : this.facade.invoke(request);
      invocation.write(Buffer.from(msg.data));
      invocation.end();
      // Pieces fit the server's max_payload (1 MiB by default) with room for the headers.
      const pieceBytes = Math.max(1024, Math.min(MAX_RESULT_MESSAGE_BYTES, (this.nc.info?.max_payload ?? MAX_RESULT_MESSAGE_BYTES) - 4096));
      for await (const chunk of invocation) {
        // An empty message is the end marker, so empty chunks are not sent.
        for (let offset = 0; offset < chunk.length; offset += pieceBytes) {
          const h = withTrace(natsHeaders());
          h.set(NatsHeader.seq, String(seq++));
          this.nc.publish(reply, chunk.subarray(offset, offset + pieceBytes), { headers: h });
        }
      }
      const done = withTrace(natsHeaders());
      done.set(NatsHeader.status, 'ok');
      done.set(NatsHeader.seq, String(seq));
      this.nc.publish(reply, new Uint8Array(0), { headers: done });
    } catch (error) {
      const failure: EngineError = toEngineError(error);
      active?.end({ error: failure });
      const h = withTrace(natsHeaders());
      h.set(NatsHeader.status, 'error');
      h.set(NatsHeader.seq, String(seq));
      h.set(NatsHeader.errorCode, failure.code);
      h.set(NatsHeader.errorStatus, String(grpcStatusOf(failure.code)));
      h.set(NatsHeader.errorMessage, failure.message.replace(/[\r\n]+/g, ' '));
      this.nc.publish(reply, new Uint8Array(0), { headers: h });
    }
  }

  async close(): Promise<void> {
    this.subscription.unsubscribe();
    await Promise.allSettled(this.inFlight);
  }
}

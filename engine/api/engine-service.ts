import type { Metadata, ServerDuplexStream, ServerUnaryCall, ServerWritableStream, sendUnaryData, UntypedServiceImplementation } from '@grpc/grpc-js';
import { InvalidInputError, NotFoundError } from '../errors/index.js';
import { deadlineOf, pipeResult, type SlowReaderLimits } from './call-utils.js';
import { eventStatusMessage } from './convert.js';
import { enqueueRequest, enqueueSpanFields, serveEnqueueStream } from './enqueue-stream.js';
import type { EngineFacade, Invocation } from './facade.js';
import { idField, invokeFields } from './request-fields.js';
import { placedInvoke, serveBroadcast } from './broadcast-service.js';
import type {
  BroadcastReplyMessage,
  ChunkMessage,
  EnqueueReplyMessage,
  EnqueueRequestMessage,
  EnqueueStreamReplyMessage,
  EnqueueStreamRequestMessage,
  EventStatusMessage,
  InvokeRequestMessage,
  InvokeStreamRequestMessage,
  SessionFrameMessage,
  StatusRequestMessage,
} from './messages.js';
import { SessionHandler, type SessionRegistry } from './session.js';
import { statusFromError } from './status.js';
import { beginRequestTrace, traceCarrier, traceMetadata, withTrailers } from './request-trace.js';
import { withTraceHeaders } from '../trace/context.js';
import { tracedInvocation } from '../trace/traced-invocation.js';

export type EngineServiceOptions = SlowReaderLimits;

const CANCELLED_BY_CLIENT = 'the client cancelled the call';

/** The cocaine.v1.Engine service over an EngineFacade. */
export function engineService(facade: EngineFacade, sessions: SessionRegistry, options: EngineServiceOptions): UntypedServiceImplementation {
  return {
    Invoke(call: ServerWritableStream<InvokeRequestMessage, ChunkMessage>) {
      const request = call.request;
      const active = beginRequestTrace(facade.traces, traceCarrier(call.metadata, request.headers), { kind: 'invoke', target: request.target });
      const trailers = traceMetadata(active);
      if (trailers) call.sendMetadata(trailers.clone());
      let invocation: Invocation;
      try {
        const { app, event, headers, timeoutMs, routingKey } = invokeFields(request);
        invocation = placedInvoke(facade, { app, event, headers: active ? withTraceHeaders(headers, active.context) : headers, deadline: deadlineOf(call, timeoutMs) }, routingKey);
      } catch (error) {
        active?.end({ error });
        call.emit('error', withTrailers(statusFromError(error), trailers));
        return;
      }
      if (active) invocation = tracedInvocation(invocation, active);
      const result = pipeResult(invocation, call, options, trailers);
      call.on('cancelled', () => {
        if (!result.settled()) invocation.cancel(CANCELLED_BY_CLIENT);
      });
      if (request.data.length > 0) invocation.write(request.data);
      invocation.end();
    },

    InvokeStream(call: ServerDuplexStream<InvokeStreamRequestMessage, ChunkMessage>) {
      let invocation: Invocation | undefined;
      let result: { settled(): boolean } | undefined;
      let refused = false;
      let trailers: Metadata | undefined;
      const refuse = (error: unknown): void => {
        refused = true;
        call.emit('error', withTrailers(statusFromError(error), trailers));
      };
      call.on('data', (message: InvokeStreamRequestMessage) => {
        if (refused || result?.settled()) return;
        if (!invocation) {
          if (message.part !== 'header' || !message.header) {
            refuse(new InvalidInputError('invalid_argument', 'InvokeStream: the first message must carry `header` (target, headers, timeout_ms)', { field: 'header' }));
            return;
          }
          const header = message.header;
          const active = beginRequestTrace(facade.traces, traceCarrier(call.metadata, header.headers), { kind: 'invoke', target: header.target });
          trailers = traceMetadata(active);
          if (trailers) call.sendMetadata(trailers.clone());
          try {
            const { app, event, headers, timeoutMs, routingKey } = invokeFields(header);
            invocation = placedInvoke(facade, { app, event, headers: active ? withTraceHeaders(headers, active.context) : headers, deadline: deadlineOf(call, timeoutMs) }, routingKey);
          } catch (error) {
            active?.end({ error });
            refuse(error);
            return;
          }
          if (active) invocation = tracedInvocation(invocation, active);
          result = pipeResult(invocation, call, options, trailers);
          return;
        }
        if (message.part === 'header') {
          invocation.cancel('protocol error from the client');
          refuse(new InvalidInputError('invalid_argument', 'InvokeStream: `header` may only be the first message', { field: 'header' }));
          return;
        }
        if (message.data && message.data.length > 0) invocation.write(message.data);
      });
      call.on('end', () => {
        if (refused) return;
        if (!invocation) {
          refuse(new InvalidInputError('invalid_argument', 'InvokeStream: the stream ended before a `header` message', { field: 'header' }));
          return;
        }
        invocation.end();
      });
      call.on('cancelled', () => {
        if (invocation && !result?.settled()) invocation.cancel(CANCELLED_BY_CLIENT);
      });
    },

    Session(call: ServerDuplexStream<SessionFrameMessage, SessionFrameMessage>) {
      new SessionHandler(facade, call, sessions);
    },

    Enqueue(call: ServerUnaryCall<EnqueueRequestMessage, EnqueueReplyMessage>, callback: sendUnaryData<EnqueueReplyMessage>) {
      const request = call.request;
      const active = beginRequestTrace(facade.traces, traceCarrier(call.metadata, request.headers), enqueueSpanFields(request));
      const trailers = traceMetadata(active);
      if (trailers) call.sendMetadata(trailers.clone());
      let queued: Promise<EnqueueReplyMessage>;
      try {
        queued = enqueueRequest(facade, request, active);
      } catch (error) {
        callback(withTrailers(statusFromError(error), trailers));
        return;
      }
      queued.then(
        (result) => callback(null, { id: result.id, duplicate: result.duplicate }, trailers),
        (error: unknown) => callback(withTrailers(statusFromError(error), trailers)),
      );
    },

    Broadcast(call: ServerWritableStream<InvokeRequestMessage, BroadcastReplyMessage>) {
      serveBroadcast(facade, call);
    },

    EnqueueStream(call: ServerDuplexStream<EnqueueStreamRequestMessage, EnqueueStreamReplyMessage>) {
      serveEnqueueStream(facade, call);
    },

    Status(call: ServerUnaryCall<StatusRequestMessage, EventStatusMessage>, callback: sendUnaryData<EventStatusMessage>) {
      let id: string;
      try {
        id = idField(call.request.id);
      } catch (error) {
        callback(statusFromError(error));
        return;
      }
      facade.status(id).then(
        (status) =>
          status
            ? callback(null, eventStatusMessage(status))
            : callback(statusFromError(new NotFoundError('event_id_not_found', `no event with id ${JSON.stringify(id)}`))),
        (error: unknown) => callback(statusFromError(error)),
      );
    },
  };
}

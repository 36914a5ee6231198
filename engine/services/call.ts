import { EngineError, toEngineError } from '../errors/index.js';
import { parseTarget } from '../util/names.js';
import type { ServiceReply, ServiceRequest, ServiceSession } from '../worker/service-channels.js';
import { tracedInvocation } from '../trace/traced-invocation.js';
import { beginServiceSpan, headersArg, integerArg, requireParent, stringArg, withTrace } from './args.js';
import { CALL_DEPTH_HEADER, type ServiceDeps } from './types.js';

/**
 * `call`: a handler invokes `app@event` through the router, like a gRPC Invoke; both bodies stream.
 * Deadline: the sooner of `timeout_ms` and the parent's. Depth: the parent's `cocaine-call-depth` + 1.
 */
export function openCall(deps: ServiceDeps, request: ServiceRequest, reply: ServiceReply): ServiceSession {
  const parent = requireParent(request.parent, 'call');
  const { app, event } = parseTarget(stringArg(request.args, 'target', true));
  const depth = callDepth(parent.headers[CALL_DEPTH_HEADER]) + 1;
  if (depth > deps.maxCallDepth) {
    throw new EngineError(
      'call_depth_exceeded',
      `call to ${app}@${event} from ${request.app}@${parent.event} would be ${depth} calls deep, past max-call-depth ${deps.maxCallDepth} (a cycle?)`,
    );
  }
  const timeoutMs = integerArg(request.args, 'timeout_ms') ?? 0;
  const deadline = timeoutMs > 0 ? Math.min(Date.now() + timeoutMs, parent.deadline || Infinity) : parent.deadline;
  const { active, headers } = beginServiceSpan(deps.tracer, withTrace(headersArg(request.args), parent), { kind: 'call', target: `${app}@${event}` });
  headers[CALL_DEPTH_HEADER] = String(depth);
  let invocation;
  try {
    invocation = deps.invoke({ app, event, headers, deadline: Number.isFinite(deadline) ? deadline : 0 });
  } catch (error) {
    active?.end({ error });
    throw error;
  }
  if (active) invocation = tracedInvocation(invocation, active);
  invocation.listen({
    onChunk: (chunk) => reply.chunk(chunk),
    onEnd: () => reply.end(),
    onError: (error) => reply.fail(toEngineError(error)),
  });
  return {
    onChunk: (chunk) => invocation.write(chunk),
    onEnd: () => invocation.end(),
    cancel: (reason) => invocation.cancel(reason),
  };
}

function callDepth(header: string | undefined): number {
  const depth = Number(header ?? 0);
  return Number.isSafeInteger(depth) && depth > 0 ? depth : 0;
}

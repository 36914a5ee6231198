import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Invocation, InvocationRequest } from '../api/facade.js';
import { PushedInvocation } from '../api/pushed-invocation.js';
import { EngineError, ERROR_CODES, InvalidInputError, type ErrorCode } from '../errors/index.js';
import { NatsHeader } from './invoke-service.js';

/** How often a call waiting on another node checks that the node is still a member. */
const LIVENESS_CHECK_MS = 1_000;
/** Room left in one NATS message for the request's headers. */
const HEADER_ROOM_BYTES = 64 * 1024;

/** A node id as one NATS subject token (ids with other characters are hex-encoded, prefixed "x"). */
export function nodeToken(nodeId: string): string {
  return /^[A-Za-z0-9_-]{1,128}$/.test(nodeId) ? nodeId : `x${Buffer.from(nodeId).toString('hex')}`;
}

/** The subject one node serves its own invocations on: `<prefix>.node.<node>.invoke.<app>`. */
export function nodeInvokeBase(prefix: string, nodeId: string): string {
  return `${prefix}.node.${nodeToken(nodeId)}.invoke.`;
}

const KNOWN = new Set<string>(ERROR_CODES);

function remoteError(msg: Msg, nodeId: string): EngineError {
  const code = msg.headers?.get(NatsHeader.errorCode) ?? '';
  const message = msg.headers?.get(NatsHeader.errorMessage) ?? 'the call failed';
  return new EngineError(KNOWN.has(code) ? (code as ErrorCode) : 'internal', message.includes(nodeId) ? message : `${message} (on node ${nodeId})`);
}

/**
 * One invocation on another node over its per-node subject (NatsInvokeService with `node`). The
 * request body is buffered and sent as one message at `end` (so at most the server's max_payload
 * less 64 KiB). The call fails with `worker_unavailable` naming the node when nobody serves its
 * subject (the node just left) or when the node leaves the membership while the call runs.
 * Cancelling stops listening; the other node finishes the call on its own (or at its deadline).
 */
export function remoteInvocation(nc: NatsConnection, prefix: string, nodeId: string, request: InvocationRequest, isLive: (nodeId: string) => boolean): Invocation {
  const body: Buffer[] = [];
  let subscription: Subscription | undefined;
  let liveness: NodeJS.Timeout | undefined;
  const stop = () => {
    subscription?.unsubscribe();
    if (liveness) clearInterval(liveness);
  };
  const invocation: PushedInvocation = new PushedInvocation({
    write: (chunk) => void body.push(chunk),
    end: () => {
      try {
        send();
      } catch (error) {
        stop();
        invocation.finish(error as Error);
      }
    },
    cancel: stop,
  });
  const fail = (error: EngineError) => {
    stop();
    invocation.finish(error);
  };
  const send = () => {
    const data = Buffer.concat(body);
    const limit = (nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM_BYTES;
    if (data.length > limit) {
      throw new EngineError('message_too_large', `the request body is ${data.length} bytes: a call routed to another node (${nodeId}) carries at most ${limit} bytes (one NATS message)`);
    }
    const h = natsHeaders();
    for (const [name, value] of Object.entries(request.headers)) {
      if (/[\r\n]/.test(value)) throw new InvalidInputError('invalid_argument', `headers[${JSON.stringify(name)}]: a call routed to another node cannot carry line breaks in a header value`, { field: 'headers' });
      h.set(name, value);
    }
    h.set(NatsHeader.event, request.event);
    if (request.deadline > 0) h.set(NatsHeader.timeoutMs, String(Math.max(1, request.deadline - Date.now())));
    const inbox = createInbox();
    subscription = nc.subscribe(inbox, {
      callback: (error, msg) => {
        if (error) return fail(new EngineError('worker_unavailable', `node ${nodeId}: ${error.message}`));
        if (msg.headers?.code === 503) return fail(new EngineError('worker_unavailable', `node ${nodeId} does not answer (no one serves its subject): it has left the cluster`));
        if (msg.data.length > 0) return invocation.push(Buffer.from(msg.data));
        const status = msg.headers?.get(NatsHeader.status);
        if (status === 'ok') {
          stop();
          invocation.finish();
        } else if (status === 'error') fail(remoteError(msg, nodeId));
      },
    });
    liveness = setInterval(() => {
      if (!isLive(nodeId)) fail(new EngineError('worker_unavailable', `node ${nodeId} left the cluster while running the call`));
    }, LIVENESS_CHECK_MS);
    liveness.unref();
    nc.publish(`${nodeInvokeBase(prefix, nodeId)}${request.app}`, data, { headers: h, reply: inbox });
  };
  return invocation;
}

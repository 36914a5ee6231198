import type { ServerWritableStream } from '@grpc/grpc-js';
import { once } from 'node:events';
import { InvalidInputError } from '../errors/index.js';
import { deadlineOf, splitChunk } from './call-utils.js';
import type { EngineFacade, Invocation, InvocationRequest } from './facade.js';
import type { BroadcastReplyMessage, InvokeRequestMessage } from './messages.js';
import { placementOf } from './placement.js';
import { invokeFields } from './request-fields.js';
import { errorFrameOf, statusFromError } from './status.js';

/** An invocation with a routing key goes through the node's placement; without one it runs here. */
export function placedInvoke(facade: EngineFacade, request: InvocationRequest, routingKey: string | undefined): Invocation {
  return routingKey === undefined ? facade.invoke(request) : placementOf(facade).invoke(request, { routingKey });
}

/**
 * The Broadcast rpc: the request on every live node; each node's chunks, then its `end` or
 * `error`, labelled with its id. A node's failure is a reply, not the stream's status: the stream
 * ends OK once every node settled (a bad request is refused with a status before any node runs).
 */
export function serveBroadcast(facade: EngineFacade, call: ServerWritableStream<InvokeRequestMessage, BroadcastReplyMessage>): void {
  const request = call.request;
  let broadcast;
  try {
    const { app, event, headers, timeoutMs, routingKey } = invokeFields(request);
    if (routingKey !== undefined) throw new InvalidInputError('invalid_argument', 'routing_key: a Broadcast runs on every node; leave routing_key empty', { field: 'routing_key' });
    broadcast = placementOf(facade).broadcast({ app, event, headers, deadline: deadlineOf(call, timeoutMs) }, request.data);
  } catch (error) {
    call.emit('error', statusFromError(error));
    return;
  }
  const running = broadcast;
  call.on('cancelled', () => running.cancel('the client cancelled the call'));
  void (async () => {
    try {
      for await (const reply of running) {
        if ('chunk' in reply) {
          for (const data of splitChunk(reply.chunk)) if (!call.write({ node: reply.node, data })) await once(call, 'drain');
        } else if ('error' in reply) call.write({ node: reply.node, error: errorFrameOf(reply.error) });
        else call.write({ node: reply.node, end: true });
      }
      call.end();
    } catch (error) {
      call.emit('error', statusFromError(error));
    }
  })();
}

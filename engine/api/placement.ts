import { EngineError, toEngineError } from '../errors/index.js';
import { nodeForKey } from '../nats/rendezvous.js';
import type { Broadcast, BroadcastOutcome, BroadcastReply, EngineFacade, Invocation, InvocationRequest, Placement, PlacementOptions } from './facade.js';
import { PushedInvocation } from './pushed-invocation.js';
import { grpcStatusOf } from './status.js';

/** The request header telling a handler which node runs a routed or broadcast call. */
export const NODE_HEADER = 'cocaine-node';

export interface PlacementPeers {
  /** Live node ids (this node included). */
  live(): string[];
  /** The request on another node (its body then written and ended by the caller). */
  invokeOn(nodeId: string, request: InvocationRequest): Invocation;
}

/** The request with `cocaine-node` set to the node running it (any caller's value, in any case, replaced). */
function onNode(request: InvocationRequest, nodeId: string): InvocationRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) if (name.toLowerCase() !== NODE_HEADER) headers[name] = value;
  headers[NODE_HEADER] = nodeId;
  return { ...request, headers };
}

/**
 * Routing keys and broadcast over this node and its peers. Without peers (no NATS) every key maps
 * to this node and a broadcast has one reply. A routed call to this node runs here, no NATS hop.
 */
export class NodePlacement implements Placement {
  constructor(
    private readonly facade: EngineFacade,
    readonly nodeId: string,
    private readonly peers?: PlacementPeers,
  ) {}

  nodes(): string[] {
    return this.peers ? this.peers.live() : [this.nodeId];
  }

  nodeForKey(routingKey: string): string {
    return nodeForKey(routingKey, this.nodes()) ?? this.nodeId;
  }

  invoke(request: InvocationRequest, options: PlacementOptions): Invocation {
    if (options.broadcast) return broadcastSummary(this.broadcastWithBody(request));
    if (options.routingKey === undefined) return this.facade.invoke(request);
    return this.on(this.nodeForKey(options.routingKey), request);
  }

  broadcast(request: InvocationRequest, body: Buffer): Broadcast {
    const started = this.broadcastWithBody(request);
    started.send(body);
    return started;
  }

  private on(nodeId: string, request: InvocationRequest): Invocation {
    const placed = onNode(request, nodeId);
    return nodeId === this.nodeId || !this.peers ? this.facade.invoke(placed) : this.peers.invokeOn(nodeId, placed);
  }

  private broadcastWithBody(request: InvocationRequest): MergedBroadcast {
    const nodes = this.nodes();
    return new MergedBroadcast(nodes.map((node) => {
      try {
        return { node, invocation: this.on(node, request) };
      } catch (error) {
        return { node, error: toEngineError(error) };
      }
    }));
  }
}

type Started = { node: string; invocation: Invocation } | { node: string; error: EngineError };

/** Every node's replies merged into one stream, in arrival order; it ends once every node settled. */
class MergedBroadcast implements Broadcast {
  readonly nodes: string[];
  private readonly replies: BroadcastReply[] = [];
  private open: number;
  private wake: (() => void) | undefined;
  private readonly invocations: Invocation[] = [];

  constructor(started: Started[]) {
    this.nodes = started.map((entry) => entry.node);
    this.open = started.length;
    for (const entry of started) {
      if ('error' in entry) {
        this.add({ node: entry.node, error: entry.error }, true);
        continue;
      }
      const { node, invocation } = entry;
      this.invocations.push(invocation);
      invocation.listen({
        onChunk: (chunk) => this.add({ node, chunk }, false),
        onEnd: () => this.add({ node, end: true }, true),
        onError: (error) => this.add({ node, error: toEngineError(error) }, true),
      });
    }
  }

  /** The same body to every node. */
  send(body: Buffer): void {
    for (const invocation of this.invocations) {
      if (body.length > 0) invocation.write(body);
      invocation.end();
    }
  }

  write(chunk: Buffer): void {
    for (const invocation of this.invocations) invocation.write(chunk);
  }

  end(): void {
    for (const invocation of this.invocations) invocation.end();
  }

  cancel(reason = 'cancelled'): void {
    for (const invocation of this.invocations) invocation.cancel(reason);
  }

  private add(reply: BroadcastReply, last: boolean): void {
    this.replies.push(reply);
    if (last) this.open--;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<BroadcastReply> {
    let done = false;
    try {
      for (;;) {
        while (this.replies.length > 0) yield this.replies.shift() as BroadcastReply;
        if (this.open <= 0) {
          done = true;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      if (!done) this.cancel('the broadcast was not read to its end');
    }
  }
}

/** A broadcast as one Invocation whose result is the JSON array of BroadcastOutcome, in node order. */
function broadcastSummary(merged: MergedBroadcast): Invocation {
  const result = new PushedInvocation({
    write: (chunk) => merged.write(chunk),
    end: () => {
      merged.end();
      void collect(merged).then((outcomes) => {
        result.push(Buffer.from(JSON.stringify(outcomes)));
        result.finish();
      }, (error: unknown) => result.finish(toEngineError(error)));
    },
    cancel: (reason) => merged.cancel(reason),
  });
  return result;
}

async function collect(merged: MergedBroadcast): Promise<BroadcastOutcome[]> {
  const chunks = new Map<string, Buffer[]>(merged.nodes.map((node) => [node, []]));
  const outcomes = new Map<string, BroadcastOutcome>();
  for await (const reply of merged) {
    if ('chunk' in reply) chunks.get(reply.node)?.push(reply.chunk);
    else if ('error' in reply) outcomes.set(reply.node, { node: reply.node, ok: false, code: reply.error.code, status: grpcStatusOf(reply.error.code), message: reply.error.message });
    else outcomes.set(reply.node, { node: reply.node, ok: true, data: Buffer.concat(chunks.get(reply.node) ?? []).toString('base64') });
  }
  return merged.nodes.map((node) => outcomes.get(node) as BroadcastOutcome);
}

/** The facade's placement, or a single-node one over its `invoke`. */
export function placementOf(facade: EngineFacade): Placement {
  return facade.placement ?? new NodePlacement(facade, facade.nodeId ?? 'local');
}

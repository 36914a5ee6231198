import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { NodeInfo } from '../api/facade.js';
import { PRESENCE_TTL_MS } from './presence.js';

/**
 * The live engine nodes, as announced in the presence bucket (`<prefix>-nodes`, presence.ts):
 * a watch keeps a local cache, so routing a key costs no NATS round trip. A node is live while
 * its last report is at most PRESENCE_TTL_MS old (a SIGKILLed node stops reporting; the bucket's
 * TTL does not tell watchers when an entry expires) and until it deletes its key on a clean stop.
 * This node is always a member.
 */
export class Membership {
  private readonly seen = new Map<string, number>();
  private stopped = false;

  private constructor(
    private readonly nodeId: string,
    private readonly watcher: { stop(): void } & AsyncIterable<{ key: string; operation: string; length: number; json<T>(): T }>,
  ) {}

  static async start(nc: NatsConnection, prefix: string, nodeId: string): Promise<Membership> {
    const kv: KV = await new Kvm(nc).create(`${prefix}-nodes`, { ttl: PRESENCE_TTL_MS, history: 1 });
    const watcher = await kv.watch();
    const membership = new Membership(nodeId, watcher);
    void membership.follow();
    return membership;
  }

  private async follow(): Promise<void> {
    try {
      for await (const entry of this.watcher) {
        if (entry.operation !== 'PUT' || entry.length === 0) {
          this.seen.delete(entry.key);
          continue;
        }
        try {
          this.seen.set(entry.key, entry.json<NodeInfo>().seenAt);
        } catch {
          // Not a node's report: ignored.
        }
      }
    } catch {
      // The watch ends with the connection; membership is then this node alone.
    }
  }

  /** Live node ids, sorted; this node always included. */
  live(now: number = Date.now()): string[] {
    const nodes = new Set([this.nodeId]);
    for (const [nodeId, seenAt] of this.seen) if (now - seenAt <= PRESENCE_TTL_MS) nodes.add(nodeId);
    return [...nodes].sort();
  }

  isLive(nodeId: string): boolean {
    return nodeId === this.nodeId || (!this.stopped && this.live().includes(nodeId));
  }

  stop(): void {
    this.stopped = true;
    this.watcher.stop();
  }
}

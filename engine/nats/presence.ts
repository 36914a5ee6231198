import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { NodeInfo } from '../api/facade.js';

const PUBLISH_EVERY_MS = 2_000;
/** A node not heard of for this long has left (its key expires). */
export const PRESENCE_TTL_MS = 10_000;

/**
 * Cluster presence: every node writes its NodeInfo to the KV bucket `<prefix>-nodes` every 2 s;
 * entries expire after 10 s, so a node that dies is noticed; a node that stops deletes its key.
 */
export class Presence {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly nodeId: string,
    private readonly snapshot: () => Promise<NodeInfo>,
  ) {}

  static async start(nc: NatsConnection, prefix: string, nodeId: string, snapshot: () => Promise<NodeInfo>): Promise<Presence> {
    const kv = await new Kvm(nc).create(`${prefix}-nodes`, { ttl: PRESENCE_TTL_MS, history: 1 });
    const presence = new Presence(kv, nodeId, snapshot);
    await presence.publish();
    presence.timer = setInterval(() => void presence.publish().catch(() => undefined), PUBLISH_EVERY_MS);
    presence.timer.unref();
    return presence;
  }

  private async publish(): Promise<void> {
    const info = await this.snapshot();
    await this.kv.put(this.nodeId, JSON.stringify(info));
  }

  /** Every live node's last report, this one first. */
  async list(): Promise<NodeInfo[]> {
    const nodes: NodeInfo[] = [];
    const keys = await this.kv.keys();
    for await (const key of keys) {
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== 'PUT' || entry.length === 0) continue;
      const info = entry.json<NodeInfo>();
      if (Date.now() - info.seenAt <= PRESENCE_TTL_MS) nodes.push(info);
    }
    return nodes.sort((a, b) => (a.nodeId === this.nodeId ? -1 : b.nodeId === this.nodeId ? 1 : a.nodeId.localeCompare(b.nodeId)));
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.kv.delete(this.nodeId).catch(() => undefined);
  }
}

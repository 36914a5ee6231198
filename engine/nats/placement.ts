import type { NatsConnection } from '@nats-io/transport-node';
import type { EngineFacade } from '../api/facade.js';
import { NodePlacement } from '../api/placement.js';
import { NatsInvokeService } from './invoke-service.js';
import { Membership } from './membership.js';
import { remoteInvocation } from './node-invoke.js';

/**
 * Placement across the engine nodes sharing a NATS prefix: this node serves its own subject
 * (`<prefix>.node.<nodeId>.invoke.<app>`), follows the live membership from presence, and maps
 * routing keys by rendezvous hashing over it (docs/nats-api.md, "Placement").
 */
export async function startNatsPlacement(nc: NatsConnection, facade: EngineFacade, prefix: string, nodeId: string): Promise<{ placement: NodePlacement; close(): Promise<void> }> {
  const service = new NatsInvokeService(nc, facade, prefix, { node: nodeId });
  const membership = await Membership.start(nc, prefix, nodeId);
  const placement = new NodePlacement(facade, nodeId, {
    live: () => membership.live(),
    invokeOn: (node, request) => remoteInvocation(nc, prefix, node, request, (id) => membership.isLive(id)),
  });
  return {
    placement,
    async close() {
      membership.stop();
      await service.close();
    },
  };
}

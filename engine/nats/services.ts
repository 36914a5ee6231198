import type { EngineOptions } from '../config/options.js';
import type { Engine } from '../engine.js';
import { natsServers } from '../backends.js';
import { connectNats } from './connection.js';
import { NatsInvokeService } from './invoke-service.js';
import { Presence } from './presence.js';
import { startNatsPlacement } from './placement.js';

/** With a NATS url: blocking calls over request-reply, cluster presence for `info --cluster`, and placement (routing keys, broadcast). */
export async function startNatsServices(engine: Engine, options: EngineOptions): Promise<{ close(): Promise<void> }> {
  const nc = await connectNats(natsServers(options.nats), { name: `cocaine-engine ${engine.nodeId}` });
  const invoke = new NatsInvokeService(nc, engine, options.natsPrefix);
  const presence = await Presence.start(nc, options.natsPrefix, engine.nodeId, () => engine.nodeInfo());
  engine.setClusterView(() => presence.list());
  const placed = await startNatsPlacement(nc, engine, options.natsPrefix, engine.nodeId);
  // EngineFacade.placement: gRPC Invoke/InvokeStream/Broadcast (and `call`) route through it.
  engine.placement = placed.placement;
  return {
    async close() {
      engine.placement = undefined;
      await placed.close();
      await invoke.close();
      await presence.stop();
      await nc.drain().catch(() => undefined);
    },
  };
}

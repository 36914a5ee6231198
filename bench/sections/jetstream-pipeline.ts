import { AckPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';

/**
 * The NATS work the jetstream queue does per event, with nothing else: publish with a message id
 * (acked), pull from a durable consumer, status PROCESSING (not awaited), status COMPLETED
 * (awaited), confirmed ack. One client process, `inFlight` publishes and up to 256 events at once.
 * This is the ceiling for the engine on the same NATS server and machine.
 */
export async function bareJetStreamPipeline(url: string, events: number, inFlight: number): Promise<number> {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await jsm.streams.add({ name: 'PIPELINE', subjects: ['pipeline.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
    const kv = await new Kvm(nc).create('pipeline-status', { history: 1 });
    await jsm.consumers.add('PIPELINE', { durable_name: 'pipeline', ack_policy: AckPolicy.Explicit, max_ack_pending: 10_000 });
    const consumer = await js.consumers.get('PIPELINE', 'pipeline');
    let done = 0;
    let finish!: () => void;
    const allDone = new Promise<void>((resolve) => (finish = resolve));
    const started = performance.now();
    const messages = await consumer.consume({ max_messages: 256 });
    void (async () => {
      for await (const msg of messages) {
        void (async () => {
          const key = msg.subject.slice('pipeline.'.length);
          nc.publish(`$KV.pipeline-status.${key}`, JSON.stringify({ id: key, state: 'PROCESSING', attempts: 1 }));
          await kv.put(key, JSON.stringify({ id: key, state: 'COMPLETED', attempts: 1, result: 'eA==' }));
          await msg.ackAck();
          if (++done === events) finish();
        })();
      }
    })();
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < events) {
          const id = `ev${next++}`;
          await js.publish(`pipeline.${id}`, 'x', { msgID: id });
        }
      }),
    );
    await allDone;
    const rate = events / ((performance.now() - started) / 1000);
    messages.stop();
    return rate;
  } finally {
    await nc.close();
  }
}

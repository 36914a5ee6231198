import type { Invocation, InvocationRequest } from '../api/facade.js';
import { EngineError } from '../errors/index.js';
import type { EventHandler, HandlerOutcome, Queue, Subscription } from './types.js';

/**
 * Runs fire-and-forget events through the same path as blocking calls. Overload and stopping
 * release the event (not an attempt); an unknown event fails it at once; anything else retries.
 */
export class EventRunner {
  private readonly subscriptions = new Map<string, Subscription>();

  constructor(
    private readonly queue: Queue,
    private readonly invoke: (request: InvocationRequest) => Invocation,
  ) {}

  subscribe(app: string, concurrency: number): void {
    if (this.subscriptions.has(app)) return;
    this.subscriptions.set(app, this.queue.subscribe(app, this.handler, { concurrency: Math.max(1, concurrency) }));
  }

  async unsubscribe(app: string): Promise<void> {
    const subscription = this.subscriptions.get(app);
    this.subscriptions.delete(app);
    await subscription?.close();
  }

  async close(): Promise<void> {
    const all = [...this.subscriptions.values()];
    this.subscriptions.clear();
    await Promise.all(all.map((subscription) => subscription.close()));
  }

  private readonly handler: EventHandler = async (event, signal): Promise<HandlerOutcome> => {
    const headers = { ...event.headers, 'cocaine-event-id': event.id, 'cocaine-attempt': String(event.attempt) };
    const invocation = this.invoke({ app: event.app, event: event.event, headers, deadline: 0 });
    const abort = () => invocation.cancel('the queue consumer stopped');
    signal.addEventListener('abort', abort, { once: true });
    invocation.write(event.data);
    invocation.end();
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of invocation) chunks.push(chunk);
      return { kind: 'completed', result: Buffer.concat(chunks) };
    } catch (error) {
      if (signal.aborted) return { kind: 'released', delayMs: 0 };
      return outcomeOf(error);
    } finally {
      signal.removeEventListener('abort', abort);
    }
  };
}

function outcomeOf(error: unknown): HandlerOutcome {
  const message = error instanceof Error ? error.message : String(error);
  if (!(error instanceof EngineError)) return { kind: 'failed', error: message, retry: true };
  switch (error.code) {
    case 'queue_full':
      return { kind: 'released', delayMs: 50 };
    case 'app_stopped':
    case 'shutting_down':
      return { kind: 'released', delayMs: 1_000 };
    case 'event_not_found':
    case 'app_not_found':
      return { kind: 'failed', error: message, retry: false };
    default:
      return { kind: 'failed', error: message, retry: true };
  }
}

/**
 * Retries a NATS/JetStream request through a server failover: while the client reconnects or the
 * cluster elects leaders, requests fail with "no responders", timeouts or "jetstream is not
 * enabled" for a few seconds. Safe for idempotent requests only (KV puts, publishes with a msg id).
 */
export async function withRetry<T>(what: string, request: () => Promise<T>, budgetMs = 20_000): Promise<T> {
  const started = Date.now();
  let delay = 50;
  for (;;) {
    try {
      return await request();
    } catch (error) {
      if (!isTransient(error) || Date.now() - started > budgetMs) {
        const message = (error as Error)?.message ?? String(error);
        throw Object.assign(new Error(`${what}: ${message}`), { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(1_000, delay * 2);
    }
  }
}

function isTransient(error: unknown): boolean {
  const text = `${(error as Error)?.name ?? ''} ${(error as Error)?.message ?? ''} ${String((error as { code?: unknown })?.code ?? '')}`;
  return /no responders|timeout|timed out|not enabled|503|disconnect|connection|leader|unavailable|reconnect/i.test(text);
}

/**
 * Retries one idempotent NATS request (KV get/put/delete, object put/get, a publish with a msg id)
 * through a failover: while the client reconnects or a stream elects a new leader, requests time
 * out, find no responders or hear "jetstream is not enabled" for a few seconds. Other errors, and
 * a closed connection, are thrown at once.
 */
export const NATS_RETRY_DEFAULTS = Object.freeze({ budgetMs: 20_000, firstDelayMs: 50, maxDelayMs: 1_000 });

export function isTransientNatsError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && depth < 4; depth++) {
    const { name = '', message = '', code } = current as { name?: string; message?: string; code?: unknown };
    if (/ClosedConnectionError|DrainingConnectionError/.test(name)) return false;
    if (/TimeoutError|NoRespondersError|JetStreamNotEnabled/.test(name)) return true;
    if (code === 503 || code === '503' || code === 10_008) return true;
    if (/no responders|timeout|timed out|temporarily unavailable|leader|no suitable peers|not enabled|disconnect|reconnect/i.test(message)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

export async function retryNats<T>(request: () => Promise<T>, budgetMs: number = NATS_RETRY_DEFAULTS.budgetMs): Promise<T> {
  const started = Date.now();
  let delay: number = NATS_RETRY_DEFAULTS.firstDelayMs;
  for (;;) {
    try {
      return await request();
    } catch (error) {
      if (!isTransientNatsError(error) || Date.now() - started + delay > budgetMs) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(NATS_RETRY_DEFAULTS.maxDelayMs, delay * 2);
    }
  }
}

/** retryNats, with the failure naming what was being done. */
export async function withRetry<T>(what: string, request: () => Promise<T>, budgetMs?: number): Promise<T> {
  try {
    return await retryNats(request, budgetMs);
  } catch (error) {
    throw Object.assign(new Error(`${what}: ${(error as Error)?.message ?? String(error)}`), { cause: error });
  }
}

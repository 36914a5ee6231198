/**
 * Retries one idempotent storage request (KV get/put/delete/purge, object put/get, key listing)
 * through a NATS failover: while the client reconnects or a stream elects a new leader, requests
 * time out or find no responders for a few seconds. Other errors are thrown at once.
 */
export const NATS_RETRY_DEFAULTS = Object.freeze({ budgetMs: 20_000, firstDelayMs: 50, maxDelayMs: 1_000 });

export function isTransientNatsError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && depth < 4; depth++) {
    const { name = '', message = '', code } = current as { name?: string; message?: string; code?: unknown };
    if (/ClosedConnectionError|DrainingConnectionError/.test(name)) return false;
    if (/TimeoutError|NoRespondersError|JetStreamNotEnabled/.test(name)) return true;
    if (code === 503 || code === '503' || code === 10_008) return true;
    if (/no responders|timeout|temporarily unavailable|leader|no suitable peers|not enabled/i.test(message)) return true;
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

import { describe, expect, it } from 'vitest';
import { AsyncChannel } from '../../engine/util/async-channel.js';

async function drain<T>(channel: AsyncChannel<T>): Promise<{ items: T[]; error?: unknown }> {
  const items: T[] = [];
  try {
    for await (const item of channel) items.push(item);
    return { items };
  } catch (error) {
    return { items, error };
  }
}

describe('AsyncChannel', () => {
  it('delivers items in order, then ends', async () => {
    const channel = new AsyncChannel<number>();
    channel.push(1);
    channel.push(2);
    setTimeout(() => {
      channel.push(3);
      channel.close();
    }, 5);
    expect(await drain(channel)).toEqual({ items: [1, 2, 3] });
  });

  it('throws a failure out of for-await, after buffered items, also when the reader is waiting', async () => {
    const buffered = new AsyncChannel<number>();
    buffered.push(1);
    buffered.fail(new Error('boom'));
    const first = await drain(buffered);
    expect(first.items).toEqual([1]);
    expect((first.error as Error).message).toBe('boom');

    const waiting = new AsyncChannel<number>();
    const result = drain(waiting);
    await new Promise((resolve) => setTimeout(resolve, 5));
    waiting.fail(new Error('late boom'));
    expect(((await result).error as Error).message).toBe('late boom');
  });

  it('reports back-pressure at the high-water mark and cancels on break', async () => {
    let cancelled = 0;
    const channel = new AsyncChannel<number>(2, () => cancelled++);
    expect(channel.push(1)).toBe(true);
    expect(channel.push(2)).toBe(false);
    for await (const item of channel) {
      expect(item).toBe(1);
      break;
    }
    expect(cancelled).toBe(1);
    expect(channel.push(3)).toBe(false);
  });
});

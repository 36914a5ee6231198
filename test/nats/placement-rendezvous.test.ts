/** Rendezvous hashing (engine/nats/rendezvous.ts): the properties routing keys rely on. */
import { describe, expect, it } from 'vitest';
import { nodeForKey } from '../../engine/nats/rendezvous.js';

const KEYS = Array.from({ length: 2000 }, (_, i) => `key-${i}`);
const NODES = ['n1', 'n2', 'n3', 'n4'];

describe('rendezvous hashing', () => {
  it('does not depend on the order membership lists the nodes in', () => {
    const reversed = [...NODES].reverse();
    for (const key of KEYS) expect(nodeForKey(key, reversed)).toBe(nodeForKey(key, NODES));
  });

  it('spreads keys over every node, roughly evenly', () => {
    const counts = new Map<string, number>();
    for (const key of KEYS) counts.set(nodeForKey(key, NODES) as string, (counts.get(nodeForKey(key, NODES) as string) ?? 0) + 1);
    for (const node of NODES) expect(counts.get(node)).toBeGreaterThan(KEYS.length / NODES.length / 2);
  });

  it('moves only the keys of a node that leaves; a joining node takes keys only for itself', () => {
    const without = NODES.filter((node) => node !== 'n3');
    for (const key of KEYS) {
      const before = nodeForKey(key, NODES);
      const after = nodeForKey(key, without);
      if (before !== 'n3') expect(after).toBe(before);
      else expect(without).toContain(after);
    }
    const joined = [...NODES, 'n5'];
    let taken = 0;
    for (const key of KEYS) {
      const after = nodeForKey(key, joined);
      if (after === 'n5') taken++;
      else expect(after).toBe(nodeForKey(key, NODES));
    }
    expect(taken).toBeGreaterThan(KEYS.length / joined.length / 2);
  });

  it('has no node for an empty membership', () => {
    expect(nodeForKey('k', [])).toBeUndefined();
  });
});

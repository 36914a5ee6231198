import { createHash } from 'node:crypto';

/**
 * Rendezvous (highest-random-weight) hashing: a routing key goes to the node whose
 * hash(node, key) is highest. Every node computes the same answer from the same membership, a key
 * keeps its node while membership holds, and when a node leaves only the keys it held move (each
 * to its runner-up); a node that joins takes about 1/n of the keys, from every node.
 */
export function rendezvousScore(nodeId: string, key: string): bigint {
  // sha1 is not used for security here: only for a uniform, stable 64-bit weight.
  return createHash('sha1').update(nodeId).update('\u0000').update(key).digest().readBigUInt64BE(0);
}

/** The node a key belongs to among `nodeIds` (ties, which need a sha1 collision, go to the smaller id). */
export function nodeForKey(key: string, nodeIds: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const nodeId of nodeIds) {
    const score = rendezvousScore(nodeId, key);
    if (score > bestScore || (score === bestScore && best !== undefined && nodeId < best)) {
      best = nodeId;
      bestScore = score;
    }
  }
  return best;
}

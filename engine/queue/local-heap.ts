/** A PENDING event waiting in memory for its turn: due at `notBefore`, ties broken by `seq`. */
export interface ReadyEntry {
  id: string;
  notBefore: number;
  seq: number;
}

function before(a: ReadyEntry, b: ReadyEntry): boolean {
  return a.notBefore < b.notBefore || (a.notBefore === b.notBefore && a.seq < b.seq);
}

/** Binary min-heap of one app's PENDING events, ordered by (notBefore, seq). */
export class ReadyHeap {
  private readonly items: ReadyEntry[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): ReadyEntry | undefined {
    return this.items[0];
  }

  push(entry: ReadyEntry): void {
    const items = this.items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): ReadyEntry | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < items.length && before(items[left]!, items[smallest]!)) smallest = left;
        if (right < items.length && before(items[right]!, items[smallest]!)) smallest = right;
        if (smallest === i) break;
        [items[i], items[smallest]] = [items[smallest]!, items[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

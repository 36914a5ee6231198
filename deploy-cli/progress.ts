import { formatBytes } from './output.js';

export interface Progress {
  update(done: number, total: number): void;
  finish(): void;
}

const SILENT: Progress = { update() {}, finish() {} };

/** A one-line progress bar on stderr, only when stderr is a terminal (never in pipes or logs). */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return SILENT;
  const started = Date.now();
  let last = 0;
  let drawn = false;
  const draw = (done: number, total: number): void => {
    const width = 30;
    const ratio = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(ratio * width);
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = `${formatBytes(Math.round(done / seconds))}/s`;
    stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${formatBytes(done)} / ${formatBytes(total)}  ${rate}\x1b[K`);
    drawn = true;
  };
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      draw(done, total);
    },
    finish() {
      if (drawn) stream.write('\n');
    },
  };
}

/** A running count with its rate on stderr (work of unknown size), only when stderr is a terminal. */
export interface Counter {
  update(done: number): void;
  finish(): void;
}

export function progressCounter(verb: string, noun: string, stream: NodeJS.WriteStream = process.stderr): Counter {
  if (!stream.isTTY) return { update() {}, finish() {} };
  const started = Date.now();
  let last = 0;
  let count = 0;
  const draw = () => {
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    stream.write(`\r${verb} ${count.toLocaleString('en-US')} ${noun}  ${Math.round(count / seconds).toLocaleString('en-US')}/s\x1b[K`);
  };
  return {
    update(done) {
      count = done;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      draw();
    },
    finish() {
      if (last > 0) {
        draw();
        stream.write('\n');
      }
    },
  };
}

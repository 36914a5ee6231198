import { pino, type Logger } from 'pino';

/** Engine log: JSON lines on stderr (pino), level from options. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { component: 'cocaine-engine' } }, pino.destination({ fd: 2, sync: false }));
}

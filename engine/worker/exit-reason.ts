import type { ExitInfo } from '../isolate/types.js';

/** "exited with code 3", "killed by SIGSEGV", plus the isolate's explanation when it has one. */
export function describeExit(exit: ExitInfo): string {
  const parts: string[] = [];
  if (exit.reason) parts.push(exit.reason);
  if (exit.signal) parts.push(`killed by ${exit.signal}`);
  else if (exit.code !== null) parts.push(`exited with code ${exit.code}`);
  else parts.push('exited');
  return parts.join(', ');
}

export function isCleanExit(exit: ExitInfo): boolean {
  return exit.code === 0 && !exit.signal && !exit.reason;
}

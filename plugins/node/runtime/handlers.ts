import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Handler } from './api.js';

export interface BoundHandler {
  fn: Handler;
  /** `this` for methods of a default-exported object. */
  self: unknown;
}

/**
 * Imports the app's entrypoint (relative to the working directory) and collects its handlers:
 * named function exports, and the function-valued properties of a default-exported object.
 */
export async function loadHandlers(entrypoint: string): Promise<Map<string, BoundHandler>> {
  const path = isAbsolute(entrypoint) ? entrypoint : resolve(process.cwd(), entrypoint);
  const module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  const handlers = new Map<string, BoundHandler>();
  const fallback = module.default;
  if (fallback !== null && typeof fallback === 'object') {
    for (const [event, value] of Object.entries(fallback)) {
      if (typeof value === 'function') handlers.set(event, { fn: value as Handler, self: fallback });
    }
  }
  for (const [event, value] of Object.entries(module)) {
    if (event !== 'default' && typeof value === 'function') handlers.set(event, { fn: value as Handler, self: undefined });
  }
  if (handlers.size === 0) {
    throw new Error(`entrypoint ${entrypoint} exports no handlers: export functions named after the events, or a default object of them`);
  }
  return handlers;
}

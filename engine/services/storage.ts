import { RevisionMismatchError, AppStoreQuotaError } from '../app-store/errors.js';
import type { AppStore } from '../app-store/types.js';
import { EngineError, InvalidInputError, toEngineError } from '../errors/index.js';
import type { ServiceReply, ServiceRequest, ServiceSession } from '../worker/service-channels.js';
import { BodyBuffer, integerArg, stringArg } from './args.js';
import type { ServiceDeps } from './types.js';

/**
 * `storage`: the app store, keyed by the worker's own app (`request.app`, set by the engine from
 * the worker it runs, never from anything the worker sends). Values travel base64 in answers.
 */
export function openStorage(deps: ServiceDeps, request: ServiceRequest, reply: ServiceReply): ServiceSession {
  const { args, app } = request;
  const method = stringArg(args, 'method', true);
  if (!['get', 'put', 'delete', 'list'].includes(method)) {
    throw new InvalidInputError('invalid_argument', `args.method ${JSON.stringify(method)} is not one of get, put, delete, list`, { field: 'args.method' });
  }
  const body = method === 'put' ? new BodyBuffer(16 * 1024 * 1024, 'the value') : undefined;
  let cancelled = false;
  const run = async (store: AppStore): Promise<unknown> => {
    switch (method) {
      case 'get': {
        const entry = await store.get(app, stringArg(args, 'key', true));
        return entry ? { found: true, revision: entry.revision, value: entry.value.toString('base64') } : { found: false };
      }
      case 'put': {
        const revision = integerArg(args, 'revision');
        return { revision: await store.put(app, stringArg(args, 'key', true), body!.take(), revision === undefined ? {} : { expectedRevision: revision }) };
      }
      case 'delete': {
        const revision = integerArg(args, 'revision', 1);
        return { deleted: await store.delete(app, stringArg(args, 'key', true), revision === undefined ? {} : { expectedRevision: revision }) };
      }
      default: {
        const page = await store.list(app, stringArg(args, 'prefix') ?? '', { limit: integerArg(args, 'limit', 1), after: stringArg(args, 'after') });
        return page.next === undefined ? { keys: page.keys } : { keys: page.keys, next: page.next };
      }
    }
  };
  return {
    onChunk: (chunk) => body?.push(chunk),
    onEnd: () => {
      deps
        .appStore()
        .then(run)
        .then(
          (answer) => {
            if (cancelled) return;
            reply.chunk(Buffer.from(JSON.stringify(answer)));
            reply.end();
          },
          (error: unknown) => reply.fail(storageError(error)),
        );
    },
    cancel: () => {
      cancelled = true;
    },
  };
}

/** The app store's refusals under the codes a handler branches on. */
function storageError(error: unknown): EngineError {
  if (error instanceof RevisionMismatchError) return new EngineError('revision_mismatch', error.message);
  if (error instanceof AppStoreQuotaError) return new EngineError('quota_exceeded', error.message);
  return toEngineError(error);
}

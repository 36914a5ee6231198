import type { ServerReadableStream, ServerUnaryCall, ServerWritableStream, sendUnaryData, UntypedServiceImplementation } from '@grpc/grpc-js';
import { once } from 'node:events';
import { InvalidInputError } from '../errors/index.js';
import { appInfoMessage, crashlogMessage, eventStatusMessage, logLineMessage, nodeInfoMessage } from './convert.js';
import type { EngineFacade } from './facade.js';
import type {
  AppInfoMessage,
  AppLogsRequestMessage,
  LogLineMessage,
  UploadAppHeaderMessage,
  UploadAppRequestMessage,
} from './messages.js';
import { statusFromError } from './status.js';

export interface DeployServiceOptions {
  /** Largest app archive accepted by UploadApp. */
  maxArchiveBytes: number;
}

/** Open AppLogs streams, ended by a shutdown. */
export type LogFollowers = Set<AbortController>;

type Unary = (call: ServerUnaryCall<any, any>, callback: sendUnaryData<any>) => void;

/** A unary rpc: validate/convert the request, call the facade, convert the answer or the error. */
function unary<Req, Res>(handler: (request: Req) => Promise<Res>): Unary {
  return (call, callback) => {
    let pending: Promise<Res>;
    try {
      pending = handler(call.request as Req);
    } catch (error) {
      callback(statusFromError(error));
      return;
    }
    pending.then(
      (reply) => callback(null, reply),
      (error: unknown) => callback(statusFromError(error)),
    );
  };
}

function required(value: string, field: string): string {
  if (value === '') throw new InvalidInputError('invalid_argument', `${field} is empty`, { field });
  return value;
}

const EMPTY = {};

/** The cocaine.v1.Deploy service over an EngineFacade. */
export function deployService(facade: EngineFacade, followers: LogFollowers, options: DeployServiceOptions): UntypedServiceImplementation {
  return {
    UploadApp(call: ServerReadableStream<UploadAppRequestMessage, AppInfoMessage>, callback: sendUnaryData<AppInfoMessage>) {
      let header: UploadAppHeaderMessage | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      const fail = (error: unknown): void => {
        if (failed) return;
        failed = true;
        chunks.length = 0;
        call.removeAllListeners('data');
        call.resume();
        callback(statusFromError(error));
      };
      const tooLarge = (bytes: number) =>
        new InvalidInputError('invalid_argument', `archive is ${bytes} bytes: larger than the ${options.maxArchiveBytes}-byte upload limit`, { field: 'archive' });
      call.on('data', (message: UploadAppRequestMessage) => {
        if (message.part === 'header' && message.header) {
          if (header) return fail(new InvalidInputError('invalid_argument', 'UploadApp: `header` may only be the first message', { field: 'header' }));
          header = message.header;
          if (header.size > options.maxArchiveBytes) fail(tooLarge(header.size));
          return;
        }
        if (!header) return fail(new InvalidInputError('invalid_argument', 'UploadApp: the first message must carry `header`', { field: 'header' }));
        const chunk = message.archive;
        if (!chunk || chunk.length === 0) return;
        size += chunk.length;
        if (size > options.maxArchiveBytes) return fail(tooLarge(size));
        chunks.push(chunk);
      });
      call.on('end', () => {
        if (failed) return;
        if (!header) return fail(new InvalidInputError('invalid_argument', 'UploadApp: the stream ended before a `header` message', { field: 'header' }));
        if (size === 0) return fail(new InvalidInputError('invalid_argument', 'UploadApp: the archive is empty', { field: 'archive' }));
        const archive = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
        chunks.length = 0;
        facade
          .uploadApp({
            name: header.name,
            manifest: header.manifest.length > 0 ? header.manifest : undefined,
            manifestFile: header.manifestFile !== '' ? header.manifestFile : undefined,
            profile: header.profile !== '' ? header.profile : undefined,
            archive,
          })
          .then(
            (view) => callback(null, appInfoMessage(view)),
            (error: unknown) => callback(statusFromError(error)),
          );
      });
    },

    ListApps: unary(async () => ({ apps: (await facade.listApps()).map(appInfoMessage) })),
    ViewApp: unary(async (request: { name: string }) => appInfoMessage(await facade.viewApp(required(request.name, 'name')))),
    RemoveApp: unary(async (request: { name: string }) => {
      await facade.removeApp(required(request.name, 'name'));
      return EMPTY;
    }),
    StartApp: unary(async (request: { name: string; profile: string }) =>
      appInfoMessage(await facade.startApp(required(request.name, 'name'), request.profile || undefined)),
    ),
    StopApp: unary(async (request: { name: string }) => appInfoMessage(await facade.stopApp(required(request.name, 'name')))),
    RestartApp: unary(async (request: { name: string; profile: string }) =>
      appInfoMessage(await facade.restartApp(required(request.name, 'name'), request.profile || undefined)),
    ),

    AppLogs(call: ServerWritableStream<AppLogsRequestMessage, LogLineMessage>) {
      const { name, lines, follow } = call.request;
      const controller = new AbortController();
      followers.add(controller);
      call.on('cancelled', () => controller.abort());
      void (async () => {
        try {
          const stream = facade.appLogs(required(name, 'name'), { lines: lines > 0 ? lines : 100, follow, signal: controller.signal });
          for await (const line of stream) {
            if (controller.signal.aborted) break;
            if (!call.write(logLineMessage(line))) await once(call, 'drain', { signal: controller.signal }).catch(() => undefined);
          }
          call.end();
        } catch (error) {
          if (controller.signal.aborted) call.end();
          else call.emit('error', statusFromError(error));
        } finally {
          followers.delete(controller);
        }
      })();
    },

    UploadProfile: unary(async (request: { name: string; content: Buffer; file: string }) => {
      const { name, profile } = await facade.uploadProfile(required(request.name, 'name'), request.content, request.file || undefined);
      return { name, profileJson: JSON.stringify(profile) };
    }),
    ListProfiles: unary(async () => ({ names: await facade.listProfiles() })),
    ViewProfile: unary(async (request: { name: string }) => {
      const { name, profile } = await facade.viewProfile(required(request.name, 'name'));
      return { name, profileJson: JSON.stringify(profile) };
    }),
    RemoveProfile: unary(async (request: { name: string }) => {
      await facade.removeProfile(required(request.name, 'name'));
      return EMPTY;
    }),

    ViewRunlist: unary(async () => ({ apps: await facade.viewRunlist() })),
    AddToRunlist: unary(async (request: { app: string; profile: string }) => ({
      apps: await facade.addToRunlist(required(request.app, 'app'), request.profile || 'default'),
    })),
    RemoveFromRunlist: unary(async (request: { name: string }) => ({ apps: await facade.removeFromRunlist(required(request.name, 'name')) })),

    ListCrashlogs: unary(async (request: { name: string }) => ({
      crashlogs: (await facade.listCrashlogs(required(request.name, 'name'))).map(crashlogMessage),
    })),
    ViewCrashlog: unary(async (request: { app: string; id: string }) =>
      crashlogMessage(await facade.viewCrashlog(required(request.app, 'app'), required(request.id, 'id'))),
    ),
    RemoveCrashlogs: unary(async (request: { name: string }) => {
      await facade.removeCrashlogs(required(request.name, 'name'));
      return EMPTY;
    }),

    Info: unary(async (request: { cluster: boolean }) => {
      const { node, cluster } = await facade.info({ cluster: request.cluster });
      return { node: nodeInfoMessage(node), cluster: cluster.map(nodeInfoMessage) };
    }),
    ListDeadLetters: unary(async (request: { name: string }) => ({
      events: (await facade.deadLetters(request.name || undefined)).map(eventStatusMessage),
    })),
    Redrive: unary(async (request: { id: string }) => eventStatusMessage(await facade.redrive(required(request.id, 'id')))),
  };
}

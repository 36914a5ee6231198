import type { ServerReadableStream, ServerUnaryCall, ServerWritableStream, sendUnaryData, UntypedServiceImplementation } from '@grpc/grpc-js';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError, DeadlineError, InvalidInputError } from '../errors/index.js';
import { MAX_DOCUMENT_BYTES } from '../../manifests/validate.js';
import { UploadSpool, type SpooledUpload } from '../storage/upload-spool.js';
import { setLongTimeout } from '../util/timers.js';
import { appInfoMessage, crashlogMessage, eventStatusMessage, logLineMessage, nodeInfoMessage } from './convert.js';
import type { EngineFacade, UploadAppInput } from './facade.js';
import type {
  AppInfoMessage,
  AppLogsRequestMessage,
  LogLineMessage,
  UploadAppHeaderMessage,
  UploadAppRequestMessage,
} from './messages.js';
import { idField, nameField, optionalName } from './request-fields.js';
import { statusFromError } from './status.js';

export interface DeployServiceOptions {
  /** Largest app archive accepted by UploadApp. */
  maxArchiveBytes: number;
  /** Where UploadApp spools archives as they arrive, under the concurrent-bytes budget. */
  uploads: UploadSpool;
  /** An upload that sends nothing for this long is abandoned (DEADLINE_EXCEEDED), freeing its share of the budget. */
  uploadIdleMs?: number;
}

/** Default of `uploadIdleMs`: generous, so a client on a slow link is never cut off while it sends. */
export const DEFAULT_UPLOAD_IDLE_MS = 120_000;

export interface UploadSpoolSettings {
  /** Default: a fresh directory under the OS temp dir. */
  uploadDir?: string;
  /** Default: twice `maxArchiveBytes`. */
  maxConcurrentUploadBytes?: number;
  maxArchiveBytes: number;
}

/** Checks `uploadIdleMs` (any duration up to the timers' safe range is fine: setLongTimeout). */
export function resolveUploadIdleMs(value: number | undefined): number {
  const idle = value ?? DEFAULT_UPLOAD_IDLE_MS;
  if (!Number.isSafeInteger(idle) || idle < 1) {
    throw new InvalidInputError('invalid_argument', `uploadIdleMs: expected an integer number of ms >= 1, got ${JSON.stringify(value)}`, { field: 'uploadIdleMs' });
  }
  return idle;
}

/** The spool UploadApp writes into: `uploadDir` (emptied of stale uploads) or a new temp dir. */
export async function openUploadSpool(settings: UploadSpoolSettings): Promise<UploadSpool> {
  const dir = settings.uploadDir ?? join(tmpdir(), `cocaine-uploads-${process.pid}-${Date.now().toString(36)}`);
  return UploadSpool.open({ dir, maxConcurrentBytes: settings.maxConcurrentUploadBytes ?? 2 * settings.maxArchiveBytes });
}

/** Longest file name shown in manifest/profile error messages. */
const MAX_FILE_LABEL = 255;

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

function document(value: Buffer | undefined, field: string): Buffer | undefined {
  if (value && value.length > MAX_DOCUMENT_BYTES) {
    throw new InvalidInputError('invalid_argument', `${field} is ${value.length} bytes, more than the ${MAX_DOCUMENT_BYTES} allowed for a manifest or profile`, { field });
  }
  return value && value.length > 0 ? value : undefined;
}

function fileLabel(value: string, field: string): string | undefined {
  if (value.length > MAX_FILE_LABEL) {
    throw new InvalidInputError('invalid_argument', `${field} is ${value.length} characters long, at most ${MAX_FILE_LABEL} are allowed`, { field });
  }
  return value === '' ? undefined : value;
}

const EMPTY = {};

/** The cocaine.v1.Deploy service over an EngineFacade. */
export function deployService(facade: EngineFacade, followers: LogFollowers, options: DeployServiceOptions): UntypedServiceImplementation {
  const idleMs = resolveUploadIdleMs(options.uploadIdleMs);
  return {
    UploadApp(call: ServerReadableStream<UploadAppRequestMessage, AppInfoMessage>, callback: sendUnaryData<AppInfoMessage>) {
      let answered = false;
      const answer = (error: unknown, reply?: AppInfoMessage): void => {
        if (answered) return;
        answered = true;
        if (error) callback(statusFromError(error));
        else callback(null, reply);
      };
      let cancelled = false;
      call.on('cancelled', () => {
        cancelled = true;
      });
      void receiveUpload(call, options, idleMs, () => cancelled)
        .then(async ({ header, upload }) => {
          let reply: AppInfoMessage | undefined;
          let failure: unknown;
          try {
            const archive = await upload.finish();
            reply = appInfoMessage(await facade.uploadApp({ ...header, archive }));
          } catch (error) {
            failure = error ?? new Error('upload failed');
          }
          // The file and the budget are given back before the answer: a client that retries at once finds them free.
          await upload.discard();
          answer(failure, reply);
        })
        .catch((error: unknown) => answer(error));
    },

    ListApps: unary(async () => ({ apps: (await facade.listApps()).map(appInfoMessage) })),
    ViewApp: unary(async (request: { name: string }) => appInfoMessage(await facade.viewApp(nameField('app', request.name, 'name')))),
    RemoveApp: unary(async (request: { name: string }) => {
      await facade.removeApp(nameField('app', request.name, 'name'));
      return EMPTY;
    }),
    StartApp: unary(async (request: { name: string; profile: string }) =>
      appInfoMessage(await facade.startApp(nameField('app', request.name, 'name'), optionalName('profile', request.profile, 'profile'))),
    ),
    StopApp: unary(async (request: { name: string }) => appInfoMessage(await facade.stopApp(nameField('app', request.name, 'name')))),
    RestartApp: unary(async (request: { name: string; profile: string }) =>
      appInfoMessage(await facade.restartApp(nameField('app', request.name, 'name'), optionalName('profile', request.profile, 'profile'))),
    ),

    AppLogs(call: ServerWritableStream<AppLogsRequestMessage, LogLineMessage>) {
      const { name: logsName, lines, follow } = call.request;
      const appName = (value: string) => nameField('app', value, 'name');
      const controller = new AbortController();
      followers.add(controller);
      call.on('cancelled', () => controller.abort());
      void (async () => {
        try {
          const stream = facade.appLogs(appName(logsName), { lines: lines > 0 ? lines : 100, follow, signal: controller.signal });
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
      const profileName = nameField('profile', request.name, 'name');
      const content = document(request.content, 'content') ?? Buffer.alloc(0);
      const uploaded = await facade.uploadProfile(profileName, content, fileLabel(request.file ?? '', 'file'));
      return { name: uploaded.name, profileJson: JSON.stringify(uploaded.profile) };
    }),
    ListProfiles: unary(async () => ({ names: await facade.listProfiles() })),
    ViewProfile: unary(async (request: { name: string }) => {
      const viewed = await facade.viewProfile(nameField('profile', request.name, 'name'));
      return { name: viewed.name, profileJson: JSON.stringify(viewed.profile) };
    }),
    RemoveProfile: unary(async (request: { name: string }) => {
      await facade.removeProfile(nameField('profile', request.name, 'name'));
      return EMPTY;
    }),

    ViewRunlist: unary(async () => ({ apps: await facade.viewRunlist() })),
    AddToRunlist: unary(async (request: { app: string; profile: string }) => ({
      apps: await facade.addToRunlist(nameField('app', request.app, 'app'), optionalName('profile', request.profile, 'profile') ?? 'default'),
    })),
    RemoveFromRunlist: unary(async (request: { name: string }) => ({ apps: await facade.removeFromRunlist(nameField('app', request.name, 'name')) })),

    ListCrashlogs: unary(async (request: { name: string }) => ({
      crashlogs: (await facade.listCrashlogs(nameField('app', request.name, 'name'))).map(crashlogMessage),
    })),
    ViewCrashlog: unary(async (request: { app: string; id: string }) =>
      crashlogMessage(await facade.viewCrashlog(nameField('app', request.app, 'app'), idField(request.id, 'id'))),
    ),
    RemoveCrashlogs: unary(async (request: { name: string }) => {
      await facade.removeCrashlogs(nameField('app', request.name, 'name'));
      return EMPTY;
    }),

    Info: unary(async (request: { cluster: boolean }) => {
      const { node, cluster } = await facade.info({ cluster: request.cluster });
      return { node: nodeInfoMessage(node), cluster: cluster.map(nodeInfoMessage) };
    }),
    ListDeadLetters: unary(async (request: { name: string }) => ({
      events: (await facade.deadLetters(optionalName('app', request.name, 'name'))).map(eventStatusMessage),
    })),
    Redrive: unary(async (request: { id: string }) => eventStatusMessage(await facade.redrive(idField(request.id, 'id')))),
  };
}

interface ReceivedUpload {
  header: Omit<UploadAppInput, 'archive'>;
  upload: SpooledUpload;
}

/**
 * Reads an UploadApp stream: the header (checked before any archive byte is taken), then the
 * archive chunks, each written to the spool before the next is read (gRPC flow control holds the
 * client meanwhile). On any failure the spooled file is discarded.
 */
async function receiveUpload(
  call: ServerReadableStream<UploadAppRequestMessage, AppInfoMessage>,
  options: DeployServiceOptions,
  idleMs: number,
  cancelled: () => boolean,
): Promise<ReceivedUpload> {
  let header: Omit<UploadAppInput, 'archive'> | undefined;
  let upload: SpooledUpload | undefined;
  const tooLarge = (bytes: number) =>
    new InvalidInputError('invalid_argument', `archive is ${bytes} bytes: larger than the ${options.maxArchiveBytes}-byte upload limit`, { field: 'archive' });
  let idle: DeadlineError | undefined;
  const arm = () =>
    setLongTimeout(() => {
      idle = new DeadlineError(`UploadApp: nothing received for ${idleMs} ms after ${upload?.bytesWritten ?? 0} archive bytes; the upload was abandoned`);
      call.destroy(idle);
    }, idleMs);
  let timer = arm();
  try {
    for await (const message of call as AsyncIterable<UploadAppRequestMessage>) {
      // Stopped while this message is handled (a slow disk is not the client's silence), re-armed after.
      timer.clear();
      if (cancelled()) break;
      if (message.part === 'header' && message.header) {
        if (header) throw new InvalidInputError('invalid_argument', 'UploadApp: `header` may only be the first message', { field: 'header' });
        const received: UploadAppHeaderMessage = message.header;
        header = {
          name: optionalName('app', received.name, 'header.name') ?? '',
          manifest: document(received.manifest, 'header.manifest'),
          manifestFile: fileLabel(received.manifestFile ?? '', 'header.manifest_file'),
          profile: optionalName('profile', received.profile, 'header.profile'),
        };
        const declared = Number(received.size ?? 0);
        if (declared > options.maxArchiveBytes) throw tooLarge(declared);
        upload = options.uploads.begin(declared);
        timer = arm();
        continue;
      }
      if (!header || !upload) throw new InvalidInputError('invalid_argument', 'UploadApp: the first message must carry `header`', { field: 'header' });
      const chunk = message.archive;
      if (chunk && chunk.length > 0) {
        if (upload.bytesWritten + chunk.length > options.maxArchiveBytes) throw tooLarge(upload.bytesWritten + chunk.length);
        await upload.write(chunk);
      }
      timer = arm();
    }
    if (cancelled()) throw new CancelledError('UploadApp was cancelled by the client');
    if (!header || !upload) throw new InvalidInputError('invalid_argument', 'UploadApp: the stream ended before a `header` message', { field: 'header' });
    if (upload.bytesWritten === 0) throw new InvalidInputError('invalid_argument', 'UploadApp: the archive is empty', { field: 'archive' });
    return { header, upload };
  } catch (error) {
    await upload?.discard();
    throw idle ?? error;
  } finally {
    timer.clear();
  }
}

import { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { EngineError, InvalidInputError } from '../errors/index.js';

export interface BuildAppImageOptions {
  /** A tar of the build context, the Dockerfile included. */
  contextTar: Buffer;
  /** Name for the image, e.g. `cocaine-app/echo:3`. */
  tag: string;
  /** Path of the Dockerfile inside the context (default `Dockerfile`). */
  dockerfile?: string;
  /** Network for RUN steps (default: Docker's default network). */
  network?: string;
  /** Labels put on the image. */
  labels?: Record<string, string>;
  /** Every line of build output, as it comes. */
  onProgress?: (line: string) => void;
}

export interface BuiltImage {
  tag: string;
  /** `sha256:...` */
  imageId: string;
}

/** Lines of output quoted in a build failure. */
const TAIL_LINES = 15;

interface BuildEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string };
}

/**
 * Builds an image from a context tar, streaming its output. A failing step is the app's problem
 * (invalid_argument, quoting the end of the output); an unreachable daemon is the engine's.
 */
export async function buildAppImage(docker: Dockerode, options: BuildAppImageOptions): Promise<BuiltImage> {
  if (!Buffer.isBuffer(options.contextTar) || options.contextTar.length === 0) {
    throw new InvalidInputError('invalid_argument', 'buildAppImage contextTar must be a non-empty tar archive', { field: 'contextTar' });
  }
  if (!/^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/.test(options.tag)) {
    throw new InvalidInputError('invalid_argument', `buildAppImage tag ${JSON.stringify(options.tag)} is not a valid image name: expected lowercase name[:tag]`, { field: 'tag' });
  }
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(Readable.from([options.contextTar]), {
      t: options.tag,
      dockerfile: options.dockerfile ?? 'Dockerfile',
      rm: true,
      forcerm: true,
      ...(options.network ? { networkmode: options.network } : {}),
      ...(options.labels ? { labels: options.labels } : {}),
    });
  } catch (error) {
    throw new EngineError('internal', `docker build of ${options.tag} could not start: ${(error as Error).message}`, { cause: error });
  }
  const tail: string[] = [];
  let imageId: string | undefined;
  let failure: string | undefined;
  const onEvent = (event: BuildEvent) => {
    if (event.aux?.ID) imageId = event.aux.ID;
    if (event.error) failure = event.errorDetail?.message ?? event.error;
    const text = event.stream ?? event.status ?? (event.error ? `error: ${failure}` : undefined);
    if (text === undefined) return;
    for (const line of text.split('\n')) {
      const trimmed = line.replace(/\r$/, '');
      if (trimmed === '') continue;
      tail.push(trimmed);
      if (tail.length > TAIL_LINES) tail.shift();
      options.onProgress?.(trimmed);
    }
  };
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null) => (error ? reject(new EngineError('internal', `docker build of ${options.tag} broke off: ${error.message}`, { cause: error })) : resolve()),
      onEvent,
    );
  });
  if (failure !== undefined) {
    throw new InvalidInputError('invalid_argument', `docker build of ${options.tag} failed: ${failure}\n${tail.join('\n')}`, { field: options.dockerfile ?? 'Dockerfile' });
  }
  if (imageId === undefined) {
    // Older daemons do not send the id as an aux event.
    imageId = (await docker.getImage(options.tag).inspect()).Id;
  }
  return { tag: options.tag, imageId };
}

import type { Server, Socket } from 'node:net';
import { CONTROL_CHANNEL, FrameType, type Frame } from '../protocol/frames.js';
import { FrameConnection } from './connection.js';

/** Frames a worker may send before its handle exists: its handshake and a few heartbeats. */
const MAX_EARLY_FRAMES = 64;

export interface EarlyConnection {
  /** The worker's connection, once it connected. */
  readonly connected: Promise<FrameConnection>;
  /** The worker has sent something. */
  readonly heard: boolean;
  /** Hands frames (those that came early first) and the close to the worker's handle. */
  attach(onFrame: (frame: Frame) => void, onClose: (error?: Error) => void): void;
  /** Nobody will attach (the spawn failed). */
  cancel(): void;
}

/**
 * The server's first connection, taken from the moment it is accepted, before spawn() returned:
 * a container may start and connect long before Docker's answer to "start" reaches the engine.
 * Until the worker's handle attaches, a handshake or heartbeat is answered with a HEARTBEAT at
 * once, so the worker hears its engine and does not disown it; frames are kept for the handle.
 */
export function acceptEarly(server: Server): EarlyConnection {
  let handlers: { onFrame: (frame: Frame) => void; onClose: (error?: Error) => void } | undefined;
  const early: Frame[] = [];
  let closed: { error?: Error } | undefined;
  let cancelled = false;
  let heard = false;
  let resolveConnected: (connection: FrameConnection) => void = () => undefined;
  const connected = new Promise<FrameConnection>((resolve) => (resolveConnected = resolve));

  const onConnection = (socket: Socket): void => {
    server.close();
    if (cancelled) {
      socket.destroy();
      return;
    }
    const connection: FrameConnection = new FrameConnection(
      socket,
      (frame) => {
        heard = true;
        if (handlers) {
          handlers.onFrame(frame);
          return;
        }
        if (frame.channel === CONTROL_CHANNEL && (frame.type === FrameType.HANDSHAKE || frame.type === FrameType.HEARTBEAT)) {
          connection.send(FrameType.HEARTBEAT, CONTROL_CHANNEL);
        }
        if (frame.type === FrameType.HEARTBEAT && frame.channel === CONTROL_CHANNEL) return;
        if (early.length >= MAX_EARLY_FRAMES) {
          connection.destroy();
          closed = { error: new Error(`sent more than ${MAX_EARLY_FRAMES} frames before the engine took its handshake`) };
          return;
        }
        early.push(frame);
      },
      (error) => {
        if (handlers) handlers.onClose(error);
        else closed ??= { error };
      },
    );
    resolveConnected(connection);
  };
  server.once('connection', onConnection);

  return {
    connected,
    get heard() {
      return heard;
    },
    attach(onFrame, onClose) {
      handlers = { onFrame, onClose };
      for (const frame of early.splice(0)) onFrame(frame);
      if (closed) onClose(closed.error);
    },
    cancel() {
      cancelled = true;
      server.off('connection', onConnection);
      void connected.then((connection) => connection.destroy());
    },
  };
}

/**
 * Child process of the gRPC baseline: a bare grpc-js echo server (unary, server-streaming, and a
 * bidi session multiplexed by id). Prints `listening on HOST:PORT` once bound; exits on SIGTERM.
 */
import { Server, ServerCredentials, type ServerDuplexStream, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import type { ChunkMessage, InvokeRequestMessage, SessionFrameMessage } from '../engine/api/messages.js';
import { bareEchoService } from './bare-echo.js';

const server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
server.addService(bareEchoService().service, {
  Unary(call: ServerUnaryCall<InvokeRequestMessage, ChunkMessage>, callback: sendUnaryData<ChunkMessage>) {
    callback(null, { data: call.request.data });
  },
  Invoke(call: ServerWritableStream<InvokeRequestMessage, ChunkMessage>) {
    call.write({ data: call.request.data });
    call.end();
  },
  Session(call: ServerDuplexStream<SessionFrameMessage, SessionFrameMessage>) {
    call.on('data', (frame: SessionFrameMessage) => {
      if (frame.invoke && frame.end) call.write({ id: frame.id, data: frame.data, end: true });
    });
    call.on('end', () => call.end());
  },
});
server.bindAsync(process.argv[2] ?? '127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    process.stderr.write(`bare-echo-server: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening on 127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));

import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ERROR_CODE_TRAILER, errorFromFrame, errorFromStatus, errorFrameOf, grpcStatusOf, statusFromError } from '../../engine/api/status.js';
import { ERROR_CODES, EngineError, type ErrorCode } from '../../engine/errors/index.js';

const TABLE: Array<[ErrorCode, status]> = [
  ['queue_full', status.RESOURCE_EXHAUSTED],
  ['shutting_down', status.RESOURCE_EXHAUSTED],
  ['not_found', status.NOT_FOUND],
  ['app_not_found', status.NOT_FOUND],
  ['event_not_found', status.NOT_FOUND],
  ['event_id_not_found', status.NOT_FOUND],
  ['message_too_large', status.RESOURCE_EXHAUSTED],
  ['session_id_in_use', status.ALREADY_EXISTS],
  ['call_depth_exceeded', status.FAILED_PRECONDITION],
  ['revision_mismatch', status.ABORTED],
  ['quota_exceeded', status.RESOURCE_EXHAUSTED],
  ['deadline_exceeded', status.DEADLINE_EXCEEDED],
  ['cancelled', status.CANCELLED],
  ['worker_crashed', status.UNAVAILABLE],
  ['worker_unavailable', status.UNAVAILABLE],
  ['app_broken', status.UNAVAILABLE],
  ['spawn_failed', status.UNAVAILABLE],
  ['startup_timeout', status.UNAVAILABLE],
  ['heartbeat_timeout', status.UNAVAILABLE],
  ['app_stopped', status.FAILED_PRECONDITION],
  ['handler_error', status.UNKNOWN],
  ['invalid_argument', status.INVALID_ARGUMENT],
  ['invalid_manifest', status.INVALID_ARGUMENT],
  ['invalid_profile', status.INVALID_ARGUMENT],
  ['unsafe_archive', status.INVALID_ARGUMENT],
  ['storage_error', status.INTERNAL],
  ['queue_error', status.INTERNAL],
  ['protocol_error', status.INTERNAL],
  ['internal', status.INTERNAL],
];

describe('EngineError code <-> gRPC status', () => {
  it.each(TABLE)('%s -> %s, with the code in the trailer, and back', (code, expected) => {
    expect(grpcStatusOf(code)).toBe(expected);
    const sent = statusFromError(new EngineError(code, `message for ${code}`));
    expect(sent.code).toBe(expected);
    expect(sent.details).toBe(`message for ${code}`);
    expect(sent.metadata.get(ERROR_CODE_TRAILER)).toEqual([code]);
    const back = errorFromStatus({ code: sent.code, details: sent.details, metadata: sent.metadata });
    expect(back).toBeInstanceOf(EngineError);
    expect(back.code).toBe(code);
    expect(back.status).toBe(expected);
    expect(back.message).toBe(`message for ${code}`);
    const frame = errorFrameOf(new EngineError(code, 'in a frame'));
    expect(frame).toEqual({ status: expected, code, message: 'in a frame' });
    expect(errorFromFrame(frame).code).toBe(code);
  });

  it('covers every ErrorCode', () => {
    const all: ErrorCode[] = TABLE.map(([code]) => code);
    expect(new Set(all)).toEqual(new Set(ERROR_CODES));
    expect(all).toHaveLength(ERROR_CODES.length);
  });

  it('plain errors become internal; statuses without the trailer get a code from the status', () => {
    const sent = statusFromError(new TypeError('oops'));
    expect(sent.code).toBe(status.INTERNAL);
    expect(sent.metadata.get(ERROR_CODE_TRAILER)).toEqual(['internal']);
    expect(errorFromStatus({ code: status.UNAVAILABLE, details: 'connect ECONNREFUSED', metadata: new Metadata() }).code).toBe('worker_unavailable');
    expect(errorFromStatus({ code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded', metadata: new Metadata() }).code).toBe('deadline_exceeded');
    expect(errorFromStatus({ code: status.UNIMPLEMENTED, details: 'no such method', metadata: new Metadata() }).code).toBe('internal');
    // grpc-js's own size refusals are message_too_large (not queue_full), with a hint in the message.
    const tooLarge = errorFromStatus({ code: status.RESOURCE_EXHAUSTED, details: 'Received message larger than max (6291461 vs. 4194304)', metadata: new Metadata() });
    expect([tooLarge.code, tooLarge.fromEngine]).toEqual(['message_too_large', false]);
    expect(tooLarge.message).toMatch(/grpc.max_receive_message_length/);
    expect(errorFromStatus({ code: status.RESOURCE_EXHAUSTED, details: 'Attempted to send message with a size larger than 65536', metadata: new Metadata() }).code).toBe('message_too_large');
    expect(errorFromStatus({ code: status.RESOURCE_EXHAUSTED, details: 'queue is full', metadata: new Metadata() }).code).toBe('queue_full');
    const bogus = new Metadata();
    bogus.set(ERROR_CODE_TRAILER, 'not-a-code');
    expect(errorFromStatus({ code: status.NOT_FOUND, details: 'x', metadata: bogus }).code).toBe('not_found');
  });
});

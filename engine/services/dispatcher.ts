import { InvalidInputError } from '../errors/index.js';
import type { LogRecord, ServiceHost, ServiceReply, ServiceRequest, ServiceSession } from '../worker/service-channels.js';
import { openCall } from './call.js';
import { openEmit } from './emit.js';
import { writeLog } from './log.js';
import { openStorage } from './storage.js';
import type { ServiceDeps } from './types.js';

/** Serves version-2 workers: one module per service (docs/worker-protocol.md, "Services"). */
export class ServiceDispatcher implements ServiceHost {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly maxEventBytes: number,
  ) {}

  open(request: ServiceRequest, reply: ServiceReply): ServiceSession {
    switch (request.service) {
      case 'call':
        return openCall(this.deps, request, reply);
      case 'emit':
        return openEmit(this.deps, request, reply, this.maxEventBytes);
      case 'storage':
        return openStorage(this.deps, request, reply);
      default:
        throw new InvalidInputError('invalid_argument', `no service named ${JSON.stringify(request.service)} (call, emit, storage)`, { field: 'service' });
    }
  }

  log(record: LogRecord): void {
    writeLog(this.deps, record);
  }
}

import { join } from 'node:path';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, protoDir } from '../engine/api/proto.js';
import { packageRoot } from '../engine/util/paths.js';

/** The BareEcho service constructor (client; `.service` for the server). */
export function bareEchoService(): ServiceClientConstructor {
  const definition = loadSync('bare-echo.proto', { ...PROTO_LOADER_OPTIONS, includeDirs: [join(packageRoot(), 'bench/proto'), protoDir()] });
  const bench = (loadPackageDefinition(definition).cocaine as GrpcObject).bench as GrpcObject;
  return bench.BareEcho as ServiceClientConstructor;
}

import { join } from 'node:path';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { packageRoot } from '../util/paths.js';

export const ENGINE_SERVICE = 'cocaine.v1.Engine';
export const DEPLOY_SERVICE = 'cocaine.v1.Deploy';
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** How messages look in JS (see messages.ts); servers and clients must agree on these. */
export const PROTO_LOADER_OPTIONS: Readonly<Options> = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
});

export interface CocaineProto {
  packageDefinition: PackageDefinition;
  /** Client constructors; `.service` is the definition a server registers. */
  Engine: ServiceClientConstructor;
  Deploy: ServiceClientConstructor;
  engineService: ServiceDefinition;
  deployService: ServiceDefinition;
}

let loaded: CocaineProto | undefined;

/** The directory holding `cocaine/v1/engine.proto`. */
export function protoDir(): string {
  return join(packageRoot(), 'proto');
}

/** Loads proto/cocaine/v1/engine.proto once per process. */
export function cocaineProto(): CocaineProto {
  if (loaded) return loaded;
  const packageDefinition = loadSync('cocaine/v1/engine.proto', { ...PROTO_LOADER_OPTIONS, includeDirs: [protoDir()] });
  const root = loadPackageDefinition(packageDefinition);
  const v1 = (root.cocaine as GrpcObject).v1 as GrpcObject;
  const Engine = v1.Engine as ServiceClientConstructor;
  const Deploy = v1.Deploy as ServiceClientConstructor;
  loaded = { packageDefinition, Engine, Deploy, engineService: Engine.service, deployService: Deploy.service };
  return loaded;
}

/**
 * A small Node.js client for the Shoal services on @grpc/grpc-js.
 *
 * The message types and service clients under `./gen` are generated from `protos/` by ts-proto (`make clients`);
 * this module only adds what every caller needs around them: the API key on every call, promises instead of
 * callbacks, the upload stream, and the rich error model (`google.rpc.Status` with `ErrorInfo` and `BadRequest`
 * details in the `grpc-status-details-bin` trailer).
 */

import { once } from "node:events";

import {
  type CallOptions,
  type ChannelCredentials,
  type ClientUnaryCall,
  credentials as grpcCredentials,
  InterceptingCall,
  type Interceptor,
  Metadata,
  type ServiceError,
  status as grpcStatus,
} from "@grpc/grpc-js";

import { BadRequest, ErrorInfo } from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";
import { HealthCheckResponse_ServingStatus, HealthClient } from "./gen/grpc/health/v1/health";
import { AssetServiceClient } from "./gen/shoal/v1/asset_service";
import { EmbeddingServiceClient } from "./gen/shoal/v1/embedding_service";
import {
  type BatchAck,
  type FrameBatch,
  IngestServiceClient,
  type UploadFramesRequest,
  type UploadFramesResponse,
} from "./gen/shoal/v1/ingest_service";
import { MetricsServiceClient } from "./gen/shoal/v1/metrics_service";
import type { Upload } from "./gen/shoal/v1/upload";
import { VersioningServiceClient } from "./gen/shoal/v1/versioning_service";

/** The services of the suite and the full names their health checks answer to. */
export const SERVICES = {
  ingest: "shoal.v1.IngestService",
  versioning: "shoal.v1.VersioningService",
  asset: "shoal.v1.AssetService",
  metrics: "shoal.v1.MetricsService",
  embedding: "shoal.v1.EmbeddingService",
} as const;

export type ServiceName = keyof typeof SERVICES;

/** Metadata key of the API key (`authorization: Bearer <key>` works too). */
export const API_KEY_METADATA = "x-api-key";
/** Trailer that carries the serialized `google.rpc.Status` of a failed call. */
export const STATUS_DETAILS_METADATA = "grpc-status-details-bin";

/** Adds the API key to every call's metadata. An interceptor rather than call credentials, because grpc-js refuses
 * call credentials on the insecure channels a local suite listens on. */
export function apiKeyInterceptor(apiKey: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(API_KEY_METADATA, apiKey);
        next(metadata, listener);
      },
    });
}

/** One violated field of a `BadRequest` detail. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** What a caller reads off a failed call: code, message and the unpacked `google.rpc.Status` details. */
export interface RpcErrorDetails {
  /** The gRPC code's number. */
  code: number;
  /** The gRPC code's name, e.g. `INVALID_ARGUMENT`. */
  codeName: string;
  message: string;
  /** `ErrorInfo.reason`: a stable machine-readable reason, e.g. `INVALID_ID`. */
  reason: string;
  domain: string;
  metadata: Record<string, string>;
  /** `BadRequest.field_violations`. */
  violations: FieldViolation[];
}

// `google.protobuf.Any` type URLs of the details Shoal sends.
const ERROR_INFO_URL = "type.googleapis.com/google.rpc.ErrorInfo";
const BAD_REQUEST_URL = "type.googleapis.com/google.rpc.BadRequest";

/** Decodes the `google.rpc.Status` a Shoal service sends with every error. */
export function unpackError(error: ServiceError): RpcErrorDetails {
  const out: RpcErrorDetails = {
    code: error.code,
    codeName: grpcStatus[error.code] ?? String(error.code),
    message: error.details,
    reason: "",
    domain: "",
    metadata: {},
    violations: [],
  };
  const raw = error.metadata?.get(STATUS_DETAILS_METADATA)[0];
  if (!(raw instanceof Uint8Array)) {
    return out;
  }
  const status = Status.decode(raw);
  out.message = status.message || out.message;
  for (const detail of status.details) {
    switch (detail.typeUrl) {
      case ERROR_INFO_URL: {
        const info = ErrorInfo.decode(detail.value);
        out.reason = info.reason;
        out.domain = info.domain;
        out.metadata = info.metadata;
        break;
      }
      case BAD_REQUEST_URL:
        for (const v of BadRequest.decode(detail.value).fieldViolations) {
          out.violations.push({ field: v.field, description: v.description });
        }
        break;
    }
  }
  return out;
}

/** True for the errors grpc-js hands to callbacks and stream listeners. */
export function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number" && "metadata" in error;
}

/** A generated unary method in the form of its widest overload. */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Calls a generated unary method and returns a promise. `client.method` must be bound, e.g.
 * `unary(c.versioning.getDataset.bind(c.versioning), { name })`. */
export function unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, timeoutMs = 30_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, new Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error) {
        reject(error);
      } else {
        resolve(response);
      }
    });
  });
}

/** Addresses (`host:port`) of the services to connect to; leave out those not needed. */
export type Addresses = Partial<Record<ServiceName, string>>;

export interface ConnectOptions {
  addresses: Addresses;
  /** API key sent as `x-api-key` metadata on every call (health checks need none). */
  apiKey?: string;
  /** Channel credentials; insecure by default (a local suite), `credentials.createSsl()` behind TLS. */
  credentials?: ChannelCredentials;
}

/** The outcome of one upload stream. */
export interface UploadResult {
  /** The upload's resource, as first sent by the server. */
  upload: Upload | undefined;
  /** One acknowledgement per batch, in order; each lists the frames validation rejected. */
  acks: BatchAck[];
  /** The upload's state after the client half-closed. */
  summary: Upload | undefined;
}

/** Generated clients for the suite's services, with the API key on every call. */
export class ShoalClient {
  readonly ingest?: InstanceType<typeof IngestServiceClient>;
  readonly versioning?: InstanceType<typeof VersioningServiceClient>;
  readonly asset?: InstanceType<typeof AssetServiceClient>;
  readonly metrics?: InstanceType<typeof MetricsServiceClient>;
  readonly embedding?: InstanceType<typeof EmbeddingServiceClient>;
  private readonly health = new Map<ServiceName, InstanceType<typeof HealthClient>>();

  constructor(options: ConnectOptions) {
    const creds = options.credentials ?? grpcCredentials.createInsecure();
    const clientOptions = options.apiKey ? { interceptors: [apiKeyInterceptor(options.apiKey)] } : {};
    const { ingest, versioning, asset, metrics, embedding } = options.addresses;
    if (ingest) this.ingest = new IngestServiceClient(ingest, creds, clientOptions);
    if (versioning) this.versioning = new VersioningServiceClient(versioning, creds, clientOptions);
    if (asset) this.asset = new AssetServiceClient(asset, creds, clientOptions);
    if (metrics) this.metrics = new MetricsServiceClient(metrics, creds, clientOptions);
    if (embedding) this.embedding = new EmbeddingServiceClient(embedding, creds, clientOptions);
    for (const [name, address] of Object.entries(options.addresses) as [ServiceName, string][]) {
      this.health.set(name, new HealthClient(address, creds));
    }
  }

  /** The `grpc.health.v1` status of a service: its overall one (`""`) or that of its full name. */
  async checkHealth(name: ServiceName, service = ""): Promise<keyof typeof HealthCheckResponse_ServingStatus> {
    const client = this.health.get(name);
    if (!client) throw new Error(`no address for ${name}`);
    const response = await unary(client.check.bind(client), { service }, 5_000);
    return HealthCheckResponse_ServingStatus[response.status] as keyof typeof HealthCheckResponse_ServingStatus;
  }

  /** Streams `batches` into a dataset or inference set (`target`) and collects the server's answers, waiting for
   * the stream to drain when grpc-js buffers too much. Resending the same `uploadId` resumes an upload: batches
   * already acknowledged come back as duplicates. Rejects with the stream's `ServiceError` if the upload fails as a
   * whole. */
  upload(target: string, uploadId: string, batches: FrameBatch[], timeoutMs = 120_000): Promise<UploadResult> {
    const ingest = this.ingest;
    if (!ingest) return Promise.reject(new Error("no address for ingest"));
    return new Promise((resolve, reject) => {
      const result: UploadResult = { upload: undefined, acks: [], summary: undefined };
      const call = ingest.uploadFrames(new Metadata(), { deadline: Date.now() + timeoutMs });
      call.on("data", (message: UploadFramesResponse) => {
        if (message.upload) result.upload = message.upload;
        if (message.ack) result.acks.push(message.ack);
        if (message.summary) result.summary = message.summary;
      });
      call.on("error", reject);
      call.on("end", () => resolve(result));
      const send = async () => {
        const requests: UploadFramesRequest[] = [{ start: { target, uploadId } }, ...batches.map((batch) => ({ batch }))];
        for (const request of requests) {
          if (!call.write(request)) await once(call, "drain");
        }
        call.end();
      };
      send().catch(reject);
    });
  }

  close(): void {
    for (const client of [this.ingest, this.versioning, this.asset, this.metrics, this.embedding]) {
      client?.close();
    }
    for (const client of this.health.values()) {
      client.close();
    }
  }
}

// The five services, called through the console with Connect's protocol (binary messages). The API key lives in this tab's
// session storage only: it is sent in the Authorization header of each call, never in a URL.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema, BadRequestSchema } from "./gen/google/rpc/error_details_pb";
import { AssetService } from "./gen/shoal/v1/asset_service_pb";
import { EmbeddingService } from "./gen/shoal/v1/embedding_service_pb";
import { IngestService } from "./gen/shoal/v1/ingest_service_pb";
import { MetricsService } from "./gen/shoal/v1/metrics_service_pb";
import { OperationsService, type Operation } from "./gen/shoal/v1/operation_pb";
import { VersioningService } from "./gen/shoal/v1/versioning_service_pb";

const KEY = "shoal.apiKey";

export function apiKey(): string {
  return sessionStorage.getItem(KEY) ?? "";
}

export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

const withKey: Interceptor = (next) => async (req) => {
  const key = apiKey();
  if (key) req.header.set("Authorization", `Bearer ${key}`);
  return next(req);
};

// Binary messages: the console passes them through to the services untouched (JSON would be parsed and re-encoded).
const transport = createConnectTransport({ baseUrl: window.location.origin, interceptors: [withKey], useBinaryFormat: true });

export const versioning: Client<typeof VersioningService> = createClient(VersioningService, transport);
export const ingest: Client<typeof IngestService> = createClient(IngestService, transport);
export const assets: Client<typeof AssetService> = createClient(AssetService, transport);
export const metrics: Client<typeof MetricsService> = createClient(MetricsService, transport);
export const embeddings: Client<typeof EmbeddingService> = createClient(EmbeddingService, transport);
export const operations: Client<typeof OperationsService> = createClient(OperationsService, transport);

/** Polls a long-running operation until it is done; its error, if it failed, is thrown. */
export async function finished(op: Operation): Promise<Operation> {
  while (!op.done) {
    await new Promise((r) => setTimeout(r, 400));
    op = await operations.getOperation({ name: op.name });
  }
  if (op.result.case === "error") throw new Error(op.result.value.message);
  return op;
}

/** What a person reads when a call fails: what happened and what to do, without revealing what exists. */
export function explain(err: unknown): string {
  const e = ConnectError.from(err);
  const reason = e.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
  switch (e.code) {
    case Code.Unauthenticated:
      return "This API key was not accepted. Check that it is complete and not expired, or ask your admin for a new one.";
    case Code.PermissionDenied:
      return "This key may not open this. Ask an admin of the project for access, or sign in with another key.";
    case Code.Unavailable:
      return `The service is not answering right now (${e.rawMessage}). Try again in a moment.`;
    case Code.InvalidArgument: {
      const fields = e.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
      const parts = fields.map((v) => `${v.field}: ${v.description}`);
      return parts.length ? `${e.rawMessage} — ${parts.join("; ")}` : e.rawMessage;
    }
    default:
      return reason ? `${e.rawMessage} (${reason})` : e.rawMessage;
  }
}

export function isAuthError(err: unknown): boolean {
  const code = ConnectError.from(err).code;
  return code === Code.Unauthenticated;
}

// Previews: an asset's preview URL, looked up once per asset and kept for the tab (bounded, oldest out first).
const previews = new Map<string, Promise<string>>();
const PREVIEW_CACHE = 2000;

/** An asset's resource name from its `shoal://` URI or one of its URLs (the store key `assets/{p}/{d}/blobs/{sha}`
 * is in the path of every URL the asset service signs), as the SDK reads it. */
export function assetName(url: string): string | null {
  if (url.startsWith("shoal://")) return url.slice("shoal://".length);
  const named = /projects\/[^/]+\/datasets\/[^/]+\/assets\/[0-9a-f]{64}/.exec(url);
  if (named) return named[0];
  let path = url;
  try {
    path = decodeURIComponent(new URL(url).pathname);
  } catch {
    return null;
  }
  const m = /(?:^|\/)assets\/([a-z][a-z0-9-]*)\/([a-z][a-z0-9-]*)\/blobs\/([0-9a-f]{64})/.exec(path);
  return m ? `projects/${m[1]}/datasets/${m[2]}/assets/${m[3]}` : null;
}

export function previewUrl(url: string, preview = ""): Promise<string> {
  if (preview && /^https?:/.test(preview)) return Promise.resolve(preview);
  const name = assetName(url);
  if (!name) return Promise.resolve(/^https?:|^data:/.test(url) ? url : "");
  let found = previews.get(name);
  if (!found) {
    found = assets.getAsset({ name }).then(
      (a) => a.previewUrl || a.url,
      () => "",
    );
    previews.set(name, found);
    if (previews.size > PREVIEW_CACHE) previews.delete(previews.keys().next().value as string);
  }
  return found;
}

/** A link to open the original: http(s) only, whatever a frame holds. */
export function originalUrl(url: string): Promise<string> {
  const web = (u: string) => (/^https?:\/\//i.test(u) ? u : "");
  const name = assetName(url);
  if (!name) return Promise.resolve(web(url));
  return assets.getAsset({ name }).then(
    (a) => web(a.url),
    () => "",
  );
}

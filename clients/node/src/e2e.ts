/**
 * End-to-end check of the Node client against a running suite, run by tests/e2e/test_node_client.py:
 *
 *   node dist/e2e.js --ingest 127.0.0.1:50051 --versioning 127.0.0.1:50052 … [--api-key KEY] [--project ID]
 *
 * Addresses also come from SHOAL_<SERVICE>_ADDRESS and the key from SHOAL_API_KEY. It checks the health of every
 * service given, creates a project with a class map and a dataset, makes one call that fails with INVALID_ARGUMENT
 * and decodes its `BadRequest`, uploads one batch with a bad frame, waits for the upload to commit and reads the
 * frames back. It prints one JSON object and exits 1 when anything differs from what the contract promises (2 on
 * bad arguments).
 */

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import { isServiceError, SERVICES, type ServiceName, ShoalClient, unary, unpackError } from "./client";
import { ChangeType, Frame } from "./gen/shoal/v1/frame";
import { FrameBatch } from "./gen/shoal/v1/ingest_service";
import { type Upload, UploadState } from "./gen/shoal/v1/upload";
import {
  CreateDatasetRequest,
  CreateProjectRequest,
  ListFramesRequest,
} from "./gen/shoal/v1/versioning_service";

const CLASSES = ["car", "person", "bike"];
const DONE = new Set([UploadState.UPLOAD_STATE_COMMITTED, UploadState.UPLOAD_STATE_PARTIALLY_FAILED]);

function options() {
  const { values } = parseArgs({
    options: {
      ingest: { type: "string" },
      versioning: { type: "string" },
      asset: { type: "string" },
      metrics: { type: "string" },
      embedding: { type: "string" },
      "api-key": { type: "string" },
      project: { type: "string" },
      timeout: { type: "string", default: "60" },
    },
  });
  const addresses: Partial<Record<ServiceName, string>> = {};
  for (const name of Object.keys(SERVICES) as ServiceName[]) {
    const address = values[name] ?? process.env[`SHOAL_${name.toUpperCase()}_ADDRESS`];
    if (address) addresses[name] = address;
  }
  const apiKey = values["api-key"] ?? process.env.SHOAL_API_KEY ?? "";
  if (!addresses.ingest || !addresses.versioning || !apiKey) {
    throw new Error("need --ingest, --versioning (or SHOAL_*_ADDRESS) and --api-key (or SHOAL_API_KEY)");
  }
  const project = values.project ?? `node-${randomUUID().slice(0, 8)}`;
  const timeoutMs = 1000 * Number(values.timeout);
  return { addresses, apiKey, project, timeoutMs };
}

function frame(id: string, classification: string): Frame {
  return Frame.fromPartial({
    frameId: id,
    changeType: ChangeType.CHANGE_TYPE_ADD,
    dateCaptured: new Date("2026-11-01T10:00:00Z"),
    sensors: [{ sensorId: "cam", image: { url: `s3://bucket/${id}.jpg`, width: 640, height: 480 } }],
    labels: [
      {
        labelId: `${id}-0`,
        classification,
        sensorId: "cam",
        box2d: { left: 2, top: 1, width: 30, height: 20 },
      },
    ],
  });
}

async function main(): Promise<number> {
  const { addresses, apiKey, project, timeoutMs } = options();
  const client = new ShoalClient({ addresses, apiKey });
  const versioning = client.versioning!;
  const ingest = client.ingest!;
  const mismatches: string[] = [];
  const expect = (ok: boolean, what: string) => {
    if (!ok) mismatches.push(what);
  };
  const out: Record<string, unknown> = { project };
  try {
    // Health: the server as a whole and the service by its full name.
    const health: Record<string, Record<string, string>> = {};
    for (const name of Object.keys(addresses) as ServiceName[]) {
      health[name] = {
        overall: await client.checkHealth(name),
        [SERVICES[name]]: await client.checkHealth(name, SERVICES[name]),
      };
      for (const [service, state] of Object.entries(health[name])) {
        expect(state === "SERVING", `${name} health of ${JSON.stringify(service)} is ${state}`);
      }
    }
    out.health = health;

    const created = await unary(versioning.createProject.bind(versioning), CreateProjectRequest.fromPartial({
      projectId: project,
      project: {
        displayName: "Node client check",
        classMap: { entries: CLASSES.map((name, classId) => ({ classId, name })) },
      },
      requestId: randomUUID(),
    }));
    out.projectName = created.name;
    out.classMap = created.classMap?.entries.map((e) => e.name);
    expect(created.name === `projects/${project}`, `project name ${created.name}`);

    const dataset = await unary(versioning.createDataset.bind(versioning), CreateDatasetRequest.fromPartial({
      parent: created.name,
      datasetId: "drive",
      dataset: { displayName: "drive" },
      requestId: randomUUID(),
    }));
    out.dataset = dataset.name;

    // A call that fails with INVALID_ARGUMENT: its BadRequest names the field.
    try {
      const request = CreateDatasetRequest.fromPartial({ parent: created.name, datasetId: "Not_An_Id!" });
      await unary(versioning.createDataset.bind(versioning), request);
      mismatches.push("CreateDataset with an invalid id succeeded");
    } catch (error) {
      if (!isServiceError(error)) throw error;
      const details = unpackError(error);
      out.invalidArgument = details;
      expect(details.codeName === "INVALID_ARGUMENT", `invalid id answered ${details.codeName}`);
      expect(details.violations.some((v) => v.field === "dataset_id"), "no violation of dataset_id");
    }

    // One batch of three frames; the second has a class that is not in the class map.
    const frames = [frame("frame-0001", "car"), frame("frame-0002", "spaceship"), frame("frame-0003", "person")];
    const good = ["frame-0001", "frame-0003"];
    const uploadId = `node-${randomUUID().slice(0, 8)}`;
    const result = await client.upload(dataset.name, uploadId, [FrameBatch.fromPartial({ seq: 0, frames })], timeoutMs);
    const ack = result.acks[0];
    out.upload = {
      name: result.upload?.name,
      accepted: ack?.accepted,
      rejected: ack?.rejected.map((e) => ({
        frameId: e.frameId,
        labelId: e.labelId,
        field: e.field,
        reason: e.reason,
        description: e.description,
      })),
      summaryState: result.summary ? UploadState[result.summary.state] : undefined,
    };
    expect(result.acks.length === 1, `${result.acks.length} acks for one batch`);
    expect(ack?.accepted === 2, `accepted ${ack?.accepted}, expected 2`);
    expect(ack?.rejected.length === 1 && ack.rejected[0].frameId === "frame-0002", "frame-0002 not rejected alone");
    expect(ack?.rejected[0]?.reason === "UNKNOWN_CLASS", `rejected for ${ack?.rejected[0]?.reason}`);

    // Wait until the versioning worker has committed what was accepted.
    const name = result.upload?.name ?? result.summary?.name ?? "";
    const deadline = Date.now() + timeoutMs;
    let upload: Upload | undefined;
    for (;;) {
      upload = await unary(ingest.getUpload.bind(ingest), { name });
      if (DONE.has(upload.state) || Date.now() > deadline) break;
      await sleep(200);
    }
    out.finalUpload = {
      state: UploadState[upload.state],
      framesReceived: upload.framesReceived,
      framesAccepted: upload.framesAccepted,
      framesRejected: upload.framesRejected,
      framesCommitted: upload.framesCommitted,
      versions: upload.versions,
    };
    expect(DONE.has(upload.state), `upload still ${UploadState[upload.state]} after ${timeoutMs} ms`);
    expect(upload.framesCommitted === 2, `${upload.framesCommitted} frames committed, expected 2`);

    // Read the frames back from the newest version.
    const request = ListFramesRequest.fromPartial({ parent: dataset.name, pageSize: 100 });
    const listed = await unary(versioning.listFrames.bind(versioning), request);
    out.frames = {
      version: listed.version,
      ids: listed.frames.map((f) => f.frameId),
      classes: listed.frames.map((f) => f.labels.map((l) => l.classification)),
    };
    const ids = listed.frames.map((f) => f.frameId);
    expect(JSON.stringify(ids) === JSON.stringify(good), `frames read back ${JSON.stringify(ids)}`);
  } catch (error) {
    mismatches.push(`unexpected error: ${isServiceError(error) ? JSON.stringify(unpackError(error)) : error}`);
  } finally {
    client.close();
  }
  out.mismatches = mismatches;
  out.ok = mismatches.length === 0;
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return mismatches.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : error}\n`);
    process.exitCode = 2;
  },
);

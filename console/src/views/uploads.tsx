// Uploads: every upload to the dataset with its state and counts, and the per-frame errors with their reasons,
// downloadable as JSONL or CSV.
import { useState } from "preact/hooks";
import { ingest } from "../api";
import { FrameErrorStage, UploadState, type FrameError } from "../gen/shoal/v1/upload_pb";
import type { DatasetRoute } from "../main";
import { href, withQuery } from "../router";
import { download, Loading, time, useAsync } from "../util";

export function Uploads({ ds }: { ds: DatasetRoute }) {
  const list = useAsync(() => ingest.listUploads({ parent: ds.name, pageSize: 1000 }), [ds.name]);
  const chosen = ds.query.get("upload") ?? "";
  return (
    <section>
      <h1>Uploads</h1>
      <Loading state={list}>
        {(r) => (
          <table class="uploads">
            <thead>
              <tr>
                <th>Upload</th>
                <th>Target</th>
                <th>State</th>
                <th class="num">Received</th>
                <th class="num">Accepted</th>
                <th class="num">Rejected</th>
                <th class="num">Committed</th>
                <th>Versions</th>
                <th>Started</th>
              </tr>
            </thead>
            <tbody>
              {r.uploads.map((u) => {
                const id = u.name.split("/").pop()!;
                return (
                  <tr key={u.name} class={id === chosen ? "selected" : ""}>
                    <td>
                      <a href={withQuery({ upload: id })}>{id.slice(0, 12)}</a>
                    </td>
                    <td>{u.target.replace(ds.name, "").replace(/^\//, "") || "dataset"}</td>
                    <td class={"state " + UploadState[u.state]?.toLowerCase()}>{UploadState[u.state]?.toLowerCase().replace("_", " ")}</td>
                    <td class="num">{String(u.framesReceived)}</td>
                    <td class="num">{String(u.framesAccepted)}</td>
                    <td class="num">{u.framesRejected ? <a href={withQuery({ upload: id })}>{String(u.framesRejected)}</a> : "0"}</td>
                    <td class="num">{String(u.framesCommitted)}</td>
                    <td>{u.versions.map(String).join(", ")}</td>
                    <td>{time(u.createTime)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Loading>
      {chosen && <Errors ds={ds} upload={`${ds.name}/uploads/${chosen}`} />}
    </section>
  );
}

async function allErrors(upload: string): Promise<FrameError[]> {
  const out: FrameError[] = [];
  let token = "";
  do {
    const r = await ingest.listUploadErrors({ parent: upload, pageSize: 1000, pageToken: token });
    out.push(...r.errors);
    token = r.nextPageToken;
  } while (token);
  return out;
}

const COLUMNS = ["frame_id", "label_id", "field", "reason", "description", "batch_seq", "stage"] as const;

function rows(errors: FrameError[]) {
  return errors.map((e) => ({
    frame_id: e.frameId,
    label_id: e.labelId,
    field: e.field,
    reason: e.reason,
    description: e.description,
    batch_seq: Number(e.batchSeq),
    stage: FrameErrorStage[e.stage]?.toLowerCase() ?? "",
  }));
}

function csv(errors: FrameError[]): string {
  const quote = (v: unknown) => {
    const s = String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [COLUMNS.join(","), ...rows(errors).map((r) => COLUMNS.map((c) => quote(r[c])).join(","))].join("\n") + "\n";
}

function Errors({ ds, upload }: { ds: DatasetRoute; upload: string }) {
  const state = useAsync(() => allErrors(upload), [upload]);
  const [shown, setShown] = useState(200);
  const id = upload.split("/").pop()!;
  return (
    <div class="upload-errors">
      <h2>Errors of upload {id.slice(0, 12)}</h2>
      <Loading state={state}>
        {(errors) =>
          errors.length === 0 ? (
            <p class="muted">Every frame of this upload was accepted.</p>
          ) : (
            <>
              <div class="buttons">
                <button onClick={() => download(`${id}-errors.jsonl`, rows(errors).map((r) => JSON.stringify(r)).join("\n") + "\n", "application/x-ndjson")}>
                  Download JSONL
                </button>
                <button onClick={() => download(`${id}-errors.csv`, csv(errors), "text/csv")}>Download CSV</button>
                <span class="muted">{errors.length} errors</span>
              </div>
              <table class="errors">
                <thead>
                  <tr>
                    <th>Frame</th>
                    <th>Label</th>
                    <th>Field</th>
                    <th>Reason</th>
                    <th>Description</th>
                    <th>Stage</th>
                  </tr>
                </thead>
                <tbody>
                  {errors.slice(0, shown).map((e, i) => (
                    <tr key={i}>
                      <td>
                        <a href={href("projects", ds.project, "datasets", ds.dataset, "frames", e.frameId)}>{e.frameId}</a>
                      </td>
                      <td>{e.labelId}</td>
                      <td>
                        <code>{e.field}</code>
                      </td>
                      <td>{e.reason}</td>
                      <td>{e.description}</td>
                      <td>{FrameErrorStage[e.stage]?.toLowerCase()}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {errors.length > shown && <button onClick={() => setShown((n) => n + 500)}>Show more</button>}
            </>
          )
        }
      </Loading>
    </div>
  );
}

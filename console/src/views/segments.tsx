// Segments: their elements as they were when added, an "outdated" mark where the frame changed since, and state.
import { versioning, explain } from "../api";
import { SegmentState } from "../gen/shoal/v1/dataset_pb";
import type { DatasetRoute } from "../main";
import { LabeledImage } from "../labels";
import { href, withQuery } from "../router";
import { Loading, time, useAsync } from "../util";
import { useState } from "preact/hooks";
import { useColours } from "./common";

export function Segments({ ds }: { ds: DatasetRoute }) {
  const state = useAsync(() => versioning.listSegments({ parent: ds.name, pageSize: 1000 }), [ds.name]);
  return (
    <section>
      <h1>Segments</h1>
      <Loading state={state}>
        {(r) => (
          <table>
            <thead>
              <tr>
                <th>Segment</th>
                <th>Name</th>
                <th class="num">Version</th>
                <th class="num">Frames</th>
                <th>State</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {r.segments.map((s) => {
                const id = s.name.split("/").pop()!;
                return (
                  <tr key={s.name}>
                    <td>
                      <a href={href("projects", ds.project, "datasets", ds.dataset, "segments", id)}>{id}</a>
                    </td>
                    <td>{s.displayName}</td>
                    <td class="num">{String(s.version)}</td>
                    <td class="num">{s.frameIds.length || s.elements.length}</td>
                    <td>{SegmentState[s.state]?.toLowerCase()}</td>
                    <td>{time(s.createTime)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Loading>
    </section>
  );
}

export function SegmentView({ ds, segment }: { ds: DatasetRoute; segment: string }) {
  const name = `${ds.name}/segments/${segment}`;
  const state = useAsync(() => versioning.getSegment({ name }), [name]);
  const frames = useAsync(() => versioning.listFrames({ parent: name, pageSize: 200 }), [name]);
  const colours = useColours(ds);
  const [error, setError] = useState("");
  async function setState(value: SegmentState) {
    try {
      await versioning.updateSegment({ segment: { name, state: value, etag: state.data?.etag ?? "" }, updateMask: { paths: ["state"] } });
      state.reload();
    } catch (err) {
      setError(explain(err));
    }
  }
  return (
    <section>
      <Loading state={state}>
        {(s) => (
          <>
            <h1>{s.displayName || segment}</h1>
            <p class="muted">
              {s.description} · version {String(s.version)} · from {s.source || "—"} · created {time(s.createTime)}
            </p>
            <label class="picker">
              State
              <select name="state" value={s.state} onChange={(e) => setState(Number((e.target as HTMLSelectElement).value))}>
                {[SegmentState.OPEN, SegmentState.RESOLVED, SegmentState.ARCHIVED].map((v) => (
                  <option key={v} value={v}>
                    {SegmentState[v].toLowerCase()}
                  </option>
                ))}
              </select>
            </label>
            {error && <p class="error">{error}</p>}
            <h2>Elements</h2>
            <table class="elements">
              <thead>
                <tr>
                  <th>Frame</th>
                  <th>Label</th>
                  <th class="num">Added at version</th>
                  <th>Since then</th>
                </tr>
              </thead>
              <tbody>
                {(s.elements.length ? s.elements : s.frameIds.map((f) => ({ frameId: f, labelId: "", version: s.version, outdated: false }))).map((e) => (
                  <tr key={e.frameId + e.labelId} class={e.outdated ? "outdated" : ""}>
                    <td>
                      <a href={withQuery({ version: String(e.version) }, href("projects", ds.project, "datasets", ds.dataset, "frames", e.frameId))}>{e.frameId}</a>
                    </td>
                    <td>{e.labelId}</td>
                    <td class="num">{String(e.version)}</td>
                    <td>{e.outdated ? <span class="badge warn">outdated: the frame changed</span> : <span class="muted">unchanged</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Loading>
      <h2>Frames as the segment holds them</h2>
      <Loading state={frames}>
        {(r) => (
          <div class="tiles">
            {r.frames.map((f) => (
              <a key={f.frameId} class="tile static" data-frame={f.frameId} href={href("projects", ds.project, "datasets", ds.dataset, "frames", f.frameId)}>
                <LabeledImage frame={f} truth={f.labels} colours={colours} fit={[180, 135]} />
                <span class="caption">{f.frameId}</span>
              </a>
            ))}
          </div>
        )}
      </Loading>
    </section>
  );
}

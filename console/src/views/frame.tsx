// One frame: every sensor, the labels (and one inference set's predictions), metadata, and the frame's history as
// a timeline — picking an entry shows the frame as that version holds it.
import { versioning, originalUrl } from "../api";
import { ChangeType, type Frame } from "../gen/shoal/v1/frame_pb";
import type { Label } from "../gen/shoal/v1/label_pb";
import type { DatasetRoute } from "../main";
import { LabeledImage, type Palette } from "../labels";
import { navigate, withQuery } from "../router";
import { Loading, metaValue, time, useAsync } from "../util";
import { useColours, VersionPicker, versionRef } from "./common";

export function FrameView({ ds, frameId }: { ds: DatasetRoute; frameId: string }) {
  const version = ds.query.get("version") ?? "";
  const colours = useColours(ds);
  const frame = useAsync(() => versioning.getFrame({ name: `${versionRef(ds)}/frames/${frameId}` }), [ds.name, version, frameId]);
  const history = useAsync(() => versioning.listFrameHistory({ name: `${ds.name}/frames/${frameId}`, pageSize: 1000 }), [ds.name, frameId]);
  const current = frame.data;
  const inference = ds.query.get("inference") ?? "";
  const sets = useAsync(() => versioning.listInferenceSets({ parent: ds.name, pageSize: 1000 }), [ds.name]);
  const predicted = useAsync(
    () =>
      inference
        ? versioning
            .listInferenceFrames({ parent: `${ds.name}/inferenceSets/${inference}`, frameIds: [frameId] })
            .then((r) => r.frames[0]?.inference?.labels ?? [])
        : Promise.resolve([] as Label[]),
    [ds.name, inference, frameId],
  );
  const predictions = predicted.data ?? [];
  return (
    <section class="frame-view">
      <div class="toolbar">
        <h1>{frameId}</h1>
        <VersionPicker ds={ds} />
        <label class="picker">
          Predictions
          <select name="inference" value={inference} onChange={(e) => navigate(withQuery({ inference: (e.target as HTMLSelectElement).value }))}>
            <option value="">none</option>
            {(sets.data?.inferenceSets ?? []).map((x) => {
              const id = x.name.split("/").pop()!;
              return (
                <option key={x.name} value={id}>
                  {id} (on v{String(x.datasetVersion)})
                </option>
              );
            })}
          </select>
        </label>
      </div>
      <div class="frame-layout">
        <div>
          <Loading state={frame}>{(f) => <Sensors frame={f} predictions={predictions} colours={colours} />}</Loading>
        </div>
        <aside>
          <h2>History</h2>
          <Loading state={history}>
            {(h) => (
              <ol class="timeline" aria-label="history">
                {h.revisions.map((r) => {
                  const v = String(r.version);
                  const active = version === v || (!version && r === h.revisions[h.revisions.length - 1]);
                  return (
                    <li key={v} class={active ? "active" : ""}>
                      <button class="link" data-version={v} onClick={() => navigate(withQuery({ version: v }))}>
                        <strong>version {v}</strong> {ChangeType[r.changeType]?.toLowerCase()}
                      </button>
                      <span class="muted">
                        {time(r.commitTime)} · {r.frame ? `${r.frame.labels.length} labels` : "deleted"}
                      </span>
                    </li>
                  );
                })}
              </ol>
            )}
          </Loading>
          {current && <Metadata frame={current} />}
        </aside>
      </div>
      {current && <LabelTable labels={current.labels} colours={colours} />}
      {inference && <LabelTable labels={predictions} colours={colours} title={`Predictions of ${inference}`} />}
    </section>
  );
}

function Sensors({ frame, predictions, colours }: { frame: Frame; predictions: Label[]; colours: Palette }) {
  return (
    <div class="sensors">
      {frame.sensors.map((s) => (
        <figure key={s.sensorId}>
          {s.data.case === "image" ? (
            <LabeledImage frame={frame} truth={frame.labels} predictions={predictions} colours={colours} names={true} sensorId={s.sensorId} masks={true} />
          ) : (
            <div class="sensor-other">
              {s.data.case} <Original url={(s.data.value as { url?: string; pointcloudUrl?: string }).url ?? ""} />
            </div>
          )}
          <figcaption>
            {s.sensorId} · {s.data.case}
          </figcaption>
        </figure>
      ))}
    </div>
  );
}

function Original({ url }: { url: string }) {
  const state = useAsync(() => originalUrl(url), [url]);
  return state.data ? (
    <a href={state.data} target="_blank" rel="noreferrer">
      open original
    </a>
  ) : null;
}

function Metadata({ frame }: { frame: Frame }) {
  const entries = Object.entries(frame.userMetadata);
  return (
    <>
      <h2>Metadata</h2>
      <dl class="facts">
        {frame.deviceId && (
          <>
            <dt>device</dt>
            <dd>{frame.deviceId}</dd>
          </>
        )}
        {frame.dateCaptured && (
          <>
            <dt>captured</dt>
            <dd>{time(frame.dateCaptured)}</dd>
          </>
        )}
        {entries.map(([k, v]) => (
          <>
            <dt key={k}>{k}</dt>
            <dd>{metaValue(v)}</dd>
          </>
        ))}
      </dl>
    </>
  );
}

export function LabelTable({ labels, colours, title = "Labels" }: { labels: Label[]; colours: Palette; title?: string }) {
  return (
    <>
      <h2>{title}</h2>
      <table class="labels">
        <thead>
          <tr>
            <th>Label</th>
            <th>Class</th>
            <th>Kind</th>
            <th>Geometry</th>
            <th class="num">Confidence</th>
            <th>Attributes</th>
          </tr>
        </thead>
        <tbody>
          {labels.map((l) => (
            <tr key={l.labelId} data-label={l.labelId}>
              <td>{l.labelId}</td>
              <td>
                <span class="swatch" style={{ background: colours.colour(l.classification) }} /> {l.classification}
              </td>
              <td>{l.geometry.case}</td>
              <td class="geometry">{geometry(l)}</td>
              <td class="num">{l.confidence !== undefined ? l.confidence.toFixed(3) : ""}</td>
              <td>
                {Object.entries(l.attributes)
                  .map(([k, v]) => `${k}=${metaValue(v)}`)
                  .join(", ")}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function geometry(l: Label): string {
  const g = l.geometry;
  const n = (x: number) => (Math.round(x * 10) / 10).toString();
  switch (g.case) {
    case "box2d":
      return `x ${n(g.value.left)} y ${n(g.value.top)} w ${n(g.value.width)} h ${n(g.value.height)}`;
    case "polygonList2d":
      return `${g.value.polygons.length} polygon(s), ${g.value.polygons.reduce((a, p) => a + p.vertices.length, 0)} vertices`;
    case "keypoints2d":
      return `${g.value.keypoints.filter((k) => k.visibility !== 1).length}/${g.value.keypoints.length} keypoints`;
    case "semanticSegmentation2d":
    case "instanceSegmentation2d":
      return "mask";
    case "cuboid3d": {
      const p = g.value.position;
      return p ? `at ${n(p.x)}, ${n(p.y)}, ${n(p.z)}` : "";
    }
    default:
      return "";
  }
}

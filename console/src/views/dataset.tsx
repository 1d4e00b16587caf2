import { useState } from "preact/hooks";
import { versioning } from "../api";
import { FieldType } from "../gen/shoal/v1/dataset_pb";
import { FrameDiffKind } from "../gen/shoal/v1/dataset_pb";
import type { DatasetRoute } from "../main";
import { href, navigate, withQuery } from "../router";
import { Loading, time, useAsync } from "../util";
import { useVersions, VersionPicker, versionRef } from "./common";

export function DatasetView({ ds }: { ds: DatasetRoute }) {
  const dataset = useAsync(() => versioning.getDataset({ name: ds.name }), [ds.name]);
  const versions = useVersions(ds);
  return (
    <section>
      <Loading state={dataset}>
        {(d) => (
          <>
            <h1>{d.displayName || ds.dataset}</h1>
            <p class="muted">{d.description}</p>
            <dl class="facts">
              <dt>Frames</dt>
              <dd>{d.frameCount.toLocaleString("en")}</dd>
              <dt>Newest version</dt>
              <dd>{String(d.latestVersion)}</dd>
              <dt>Embeddings</dt>
              <dd>{d.embeddingDimension ? `${d.embeddingDimension}-d, ${d.embeddingSource}` : "none"}</dd>
              <dt>Metadata</dt>
              <dd>
                {(d.metadataSchema?.fields ?? []).map((f) => (
                  <span class="chip" key={f.name}>
                    {f.name}: {FieldType[f.type]?.toLowerCase()}
                  </span>
                ))}
              </dd>
            </dl>
          </>
        )}
      </Loading>
      <h2>Versions</h2>
      <Loading state={versions}>
        {({ versions: list, checkpoints }) => (
          <table class="versions">
            <thead>
              <tr>
                <th class="num">Version</th>
                <th>Committed</th>
                <th class="num">Frames</th>
                <th class="num">Labels</th>
                <th>Change</th>
                <th>Checkpoints</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.map((v, i) => (
                <tr key={v.name}>
                  <td class="num">{String(v.version)}</td>
                  <td>{time(v.commitTime)}</td>
                  <td class="num">{v.frameCount.toLocaleString("en")}</td>
                  <td class="num">{v.labelCount.toLocaleString("en")}</td>
                  <td>
                    +{String(v.framesAdded)} ~{String(v.framesModified)} −{String(v.framesDeleted)}
                  </td>
                  <td>{checkpoints.filter((c) => c.version === v.version).map((c) => c.name.split("/").pop()).join(", ")}</td>
                  <td>
                    <a href={withQuery({ version: String(v.version) }, href("projects", ds.project, "datasets", ds.dataset, "frames"))}>frames</a>
                    {i + 1 < list.length && (
                      <>
                        {" · "}
                        <a href={withQuery({ base: String(list[i + 1].version), target: String(v.version) })}>diff</a>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loading>
      <Diff ds={ds} />
    </section>
  );
}

function Diff({ ds }: { ds: DatasetRoute }) {
  const base = ds.query.get("base") ?? "";
  const target = ds.query.get("target") ?? "";
  const [token, setToken] = useState("");
  const diff = useAsync(
    () =>
      base && target
        ? versioning.diffVersions({ base: versionRef(ds, base), target: versionRef(ds, target), pageSize: 200, pageToken: token })
        : Promise.resolve(null),
    [ds.name, base, target, token],
  );
  return (
    <>
      <h2>Compare versions</h2>
      <div class="toolbar">
        <VersionPicker ds={ds} param="base" label="Base" />
        <VersionPicker ds={ds} param="target" label="Target" />
      </div>
      <Loading state={diff}>
        {(r) =>
          r && (
            <>
              <p class="summary">
                <span class="added">{String(r.addedCount)} added</span> · <span class="modified">{String(r.modifiedCount)} modified</span> ·{" "}
                <span class="deleted">{String(r.deletedCount)} deleted</span>
              </p>
              <table class="diff">
                <thead>
                  <tr>
                    <th>Frame</th>
                    <th>Change</th>
                    <th>Fields that changed</th>
                  </tr>
                </thead>
                <tbody>
                  {r.diffs.map((f) => (
                    <tr key={f.frameId} class={FrameDiffKind[f.kind]?.toLowerCase()}>
                      <td>
                        <a href={withQuery({ version: target }, href("projects", ds.project, "datasets", ds.dataset, "frames", f.frameId))}>{f.frameId}</a>
                      </td>
                      <td>{FrameDiffKind[f.kind]?.toLowerCase()}</td>
                      <td>{f.changedFields.join(", ")}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {r.nextPageToken && (
                <button onClick={() => setToken(r.nextPageToken)}>Next page</button>
              )}
            </>
          )
        }
      </Loading>
      {!(base && target) && <p class="muted">Pick a base and a target version to see the frames added, modified and deleted between them.</p>}
      {base && target && <button class="link" onClick={() => navigate(withQuery({ base: "", target: "" }))}>Clear</button>}
    </>
  );
}

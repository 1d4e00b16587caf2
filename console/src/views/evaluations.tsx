// Evaluations: headline and per-class figures, PR curves, a confusion matrix whose cells open their frames, and the
// label-error candidates as a keyboard review queue whose accepted items are filed into a segment.
import { metrics, versioning } from "../api";
import { EvaluationState, type ConfusionMatrix, type PrecisionRecallCurve } from "../gen/shoal/v1/evaluation_pb";
import type { DatasetRoute } from "../main";
import { LabeledImage, type Palette } from "../labels";
import { href, withQuery } from "../router";
import { fmt, Loading, time, useAsync } from "../util";
import { useColours } from "./common";
import { ReviewQueue } from "./review";

const HEADLINE = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"];

export function Evaluations({ ds }: { ds: DatasetRoute }) {
  const state = useAsync(async () => {
    const sets = await versioning.listInferenceSets({ parent: ds.name, pageSize: 1000 });
    const lists = await Promise.all(sets.inferenceSets.map((s) => metrics.listEvaluations({ parent: s.name, pageSize: 1000 })));
    return sets.inferenceSets.map((s, i) => ({ set: s, evaluations: lists[i].evaluations }));
  }, [ds.name]);
  return (
    <section>
      <h1>Evaluations</h1>
      <Loading state={state}>
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Inference set</th>
                <th>Evaluation</th>
                <th class="num">Dataset version</th>
                <th>State</th>
                <th>Finished</th>
              </tr>
            </thead>
            <tbody>
              {rows.flatMap(({ set, evaluations }) =>
                evaluations.map((e) => {
                  const id = e.name.split("/").pop()!;
                  const setId = set.name.split("/").pop()!;
                  return (
                    <tr key={e.name}>
                      <td>{setId}</td>
                      <td>
                        <a href={href("projects", ds.project, "datasets", ds.dataset, "evaluations", setId, id)}>{id.slice(0, 12)}</a>
                      </td>
                      <td class="num">{String(e.datasetVersion)}</td>
                      <td>{EvaluationState[e.state]?.toLowerCase()}</td>
                      <td>{time(e.completeTime)}</td>
                    </tr>
                  );
                }),
              )}
            </tbody>
          </table>
        )}
      </Loading>
    </section>
  );
}

export function EvaluationView({ ds, inferenceSet, evaluation }: { ds: DatasetRoute; inferenceSet: string; evaluation: string }) {
  const name = `${ds.name}/inferenceSets/${inferenceSet}/evaluations/${evaluation}`;
  const state = useAsync(() => metrics.getEvaluation({ name }), [name]);
  const colours = useColours(ds);
  const row = ds.query.get("row");
  const column = ds.query.get("column");
  return (
    <section class="evaluation">
      <Loading state={state}>
        {(e) => {
          const r = e.result!;
          return (
            <>
              <h1>
                {inferenceSet} on version {String(e.datasetVersion)}
              </h1>
              <div class="headline">
                {HEADLINE.filter((k) => k in r.metrics).map((k) => (
                  <div key={k} class="figure">
                    <span class="muted">{k}</span>
                    <strong>{fmt(r.metrics[k])}</strong>
                  </div>
                ))}
              </div>
              <div class="eval-layout">
                <div>
                  <h2>Per class</h2>
                  <table>
                    <thead>
                      <tr>
                        <th>Class</th>
                        <th class="num">Support</th>
                        {HEADLINE.slice(0, 3).map((k) => (
                          <th class="num" key={k}>
                            {k}
                          </th>
                        ))}
                      </tr>
                    </thead>
                    <tbody>
                      {r.perClass.map((c) => (
                        <tr key={c.className}>
                          <td>
                            <span class="swatch" style={{ background: colours.colour(c.className) }} /> {c.className}
                          </td>
                          <td class="num">{String(c.support)}</td>
                          {HEADLINE.slice(0, 3).map((k) => (
                            <td class="num" key={k}>
                              {fmt(c.metrics[k])}
                            </td>
                          ))}
                        </tr>
                      ))}
                    </tbody>
                  </table>
                  <h2>Precision–recall</h2>
                  <Curves curves={r.prCurves} colours={colours} />
                </div>
                <div>
                  <h2>Confusion matrix</h2>
                  {r.confusionMatrix && <Matrix ds={ds} matrix={r.confusionMatrix} />}
                </div>
              </div>
              {row !== null && column !== null && r.confusionMatrix && (
                <CellFrames ds={ds} name={name} version={String(e.datasetVersion)} row={Number(row)} column={Number(column)} matrix={r.confusionMatrix} colours={colours} />
              )}
              <Candidates ds={ds} name={name} version={e.datasetVersion} inferenceSet={inferenceSet} colours={colours} />
            </>
          );
        }}
      </Loading>
    </section>
  );
}

function Curves({ curves, colours }: { curves: PrecisionRecallCurve[]; colours: Palette }) {
  const W = 360;
  const H = 240;
  const at50 = curves.filter((c) => Math.abs(c.iouThreshold - 0.5) < 1e-9);
  const shown = at50.length ? at50 : curves;
  return (
    <svg class="curves" viewBox={`-30 -10 ${W + 40} ${H + 40}`} role="img" aria-label="precision-recall curves">
      <rect x={0} y={0} width={W} height={H} fill="none" stroke="#ccc" />
      <text x={W / 2} y={H + 25} text-anchor="middle" class="axis">
        recall
      </text>
      <text x={-18} y={H / 2} text-anchor="middle" class="axis" transform={`rotate(-90 -18 ${H / 2})`}>
        precision
      </text>
      {shown.map((c) => (
        <polyline
          key={c.className + c.iouThreshold}
          fill="none"
          stroke={colours.colour(c.className)}
          stroke-width="2"
          points={c.recall.map((r, i) => `${r * W},${(1 - c.precision[i]) * H}`).join(" ")}
        >
          <title>
            {c.className} @ IoU {c.iouThreshold}
          </title>
        </polyline>
      ))}
    </svg>
  );
}

function Matrix({ ds, matrix }: { ds: DatasetRoute; matrix: ConfusionMatrix }) {
  const n = matrix.counts?.rows ?? 0;
  const values = matrix.counts?.values ?? [];
  const max = Math.max(1, ...values);
  const row = ds.query.get("row");
  const column = ds.query.get("column");
  return (
    <table class="matrix" aria-label="confusion matrix">
      <thead>
        <tr>
          <th class="corner">truth ↓ / predicted →</th>
          {matrix.labels.map((l) => (
            <th key={l}>{l}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {matrix.labels.map((l, i) => (
          <tr key={l}>
            <th>{l}</th>
            {Array.from({ length: n }, (_, j) => {
              const v = values[i * n + j] ?? 0;
              const selected = String(i) === row && String(j) === column;
              return (
                <td key={j} class={(i === j ? "diag " : "") + (selected ? "selected" : "")} style={{ background: v ? `rgba(37, 99, 235, ${0.08 + (0.6 * v) / max})` : undefined }}>
                  {v ? (
                    <a href={withQuery({ row: i, column: j })} data-cell={`${i},${j}`}>
                      {v}
                    </a>
                  ) : (
                    <span class="muted">0</span>
                  )}
                </td>
              );
            })}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function CellFrames(props: { ds: DatasetRoute; name: string; version: string; row: number; column: number; matrix: ConfusionMatrix; colours: Palette }) {
  const { ds, name, version, row, column, matrix, colours } = props;
  const state = useAsync(async () => {
    const r = await metrics.listFrameMatches({ parent: name, cell: { row, column }, pageSize: 60 });
    const frames = await Promise.all(r.frames.map((f) => versioning.getFrame({ name: `${ds.name}/versions/${version}/frames/${f.frameId}` })));
    return { matches: r.frames, frames, more: !!r.nextPageToken };
  }, [name, row, column]);
  const truthName = matrix.labels[row];
  const predName = matrix.labels[column];
  return (
    <div class="cell-frames">
      <h2>
        Frames where ground truth <em>{truthName}</em> met prediction <em>{predName}</em>
      </h2>
      <Loading state={state}>
        {({ matches, frames, more }) => (
          <>
            <div class="tiles">
              {frames.map((f, i) => {
                const ids = new Set(matches[i].matches.map((m) => m.groundTruthLabelId));
                return (
                  <a key={f.frameId} class="tile static" data-frame={f.frameId} href={withQuery({ version }, href("projects", ds.project, "datasets", ds.dataset, "frames", f.frameId))}>
                    <LabeledImage frame={f} truth={f.labels.filter((l) => ids.has(l.labelId))} colours={colours} fit={[180, 135]} />
                    <span class="caption">{f.frameId}</span>
                  </a>
                );
              })}
            </div>
            {more && <p class="muted">Showing the first 60 frames.</p>}
          </>
        )}
      </Loading>
    </div>
  );
}

function Candidates(props: { ds: DatasetRoute; name: string; version: bigint; inferenceSet: string; colours: Palette }) {
  const { ds, name, version, inferenceSet, colours } = props;
  const state = useAsync(() => metrics.listLabelErrorCandidates({ parent: name, pageSize: 500 }), [name]);
  return (
    <div class="review">
      <h2>Label-error candidates</h2>
      <Loading state={state}>
        {(r) => (
          <ReviewQueue
            ds={ds}
            version={version}
            candidates={r.candidates}
            colours={colours}
            source={name}
            segmentName={`Label errors found reviewing ${inferenceSet}`}
            segmentPrefix={`review-${inferenceSet}`}
          />
        )}
      </Loading>
    </div>
  );
}

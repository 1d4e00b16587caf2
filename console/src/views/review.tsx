// A review queue of candidates (label errors of an evaluation, keypoint-check findings): one at a time, drawn with
// its label, judged from the keyboard — a accept, r reject, j / → next, k / ← previous — and the accepted ones filed
// into a segment.
import { useEffect, useState } from "preact/hooks";
import { explain, versioning } from "../api";
import { LabelErrorReason, type LabelErrorCandidate } from "../gen/shoal/v1/evaluation_pb";
import type { DatasetRoute } from "../main";
import { LabeledImage, type Palette } from "../labels";
import { href, withQuery } from "../router";
import { useAsync } from "../util";

type Props = {
  ds: DatasetRoute;
  version: bigint;
  candidates: LabelErrorCandidate[];
  colours: Palette;
  source: string;
  segmentName: string;
  segmentPrefix: string;
};

export function ReviewQueue({ ds, version, candidates, colours, source, segmentName, segmentPrefix }: Props) {
  const [at, setAt] = useState(0);
  const [verdicts, setVerdicts] = useState<Record<number, "accepted" | "rejected">>({});
  const [filed, setFiled] = useState("");
  const current = candidates[at];
  const frame = useAsync(
    () => (current ? versioning.getFrame({ name: `${ds.name}/versions/${version}/frames/${current.frameId}` }) : Promise.resolve(null)),
    [current?.frameId, version],
  );
  const judge = (verdict: "accepted" | "rejected") => {
    setVerdicts((v) => ({ ...v, [at]: verdict }));
    setAt((i) => Math.min(candidates.length - 1, i + 1));
  };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.target as HTMLElement).closest("input, textarea, select") || !candidates.length) return;
      if (e.key === "a") judge("accepted");
      else if (e.key === "r") judge("rejected");
      else if (e.key === "j" || e.key === "ArrowRight") setAt((i) => Math.min(candidates.length - 1, i + 1));
      else if (e.key === "k" || e.key === "ArrowLeft") setAt((i) => Math.max(0, i - 1));
      else return;
      e.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [candidates.length, at]);
  const accepted = candidates.filter((_, i) => verdicts[i] === "accepted");
  async function file() {
    try {
      const s = await versioning.createSegment({
        parent: ds.name,
        segmentId: `${segmentPrefix}-${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9-]/g, "-"),
        segment: {
          displayName: segmentName,
          version,
          frameIds: [...new Set(accepted.map((c) => c.frameId))],
          source,
          elements: accepted.map((c) => ({ frameId: c.frameId, labelId: c.groundTruthLabelId, version })),
        },
      });
      setFiled(s.name);
    } catch (err) {
      setFiled("error: " + explain(err));
    }
  }
  if (!current) return <p class="muted">No candidates.</p>;
  return (
    <>
      <p class="muted">Keys: a accept · r reject · j / → next · k / ← previous.</p>
      <div class="review-item">
        <div class="review-image">
          {frame.data && (
            <LabeledImage
              frame={frame.data}
              truth={frame.data.labels.filter((l) => l.labelId === current.groundTruthLabelId || !current.groundTruthLabelId)}
              colours={colours}
              names={true}
            />
          )}
        </div>
        <div>
          <p>
            <strong>
              {at + 1} / {candidates.length}
            </strong>{" "}
            {LabelErrorReason[current.reason]?.toLowerCase().replace(/_/g, " ")} · score {current.score.toFixed(2)}
          </p>
          <p>{current.description}</p>
          {current.keypoints.length > 0 && <p>keypoints: {current.keypoints.join(", ")}</p>}
          <p>
            frame <a href={withQuery({ version: String(version) }, href("projects", ds.project, "datasets", ds.dataset, "frames", current.frameId))}>{current.frameId}</a>
            {current.groundTruthLabelId && <> · label {current.groundTruthLabelId}</>}
          </p>
          <p class={"verdict " + (verdicts[at] ?? "")}>{verdicts[at] ?? "not reviewed"}</p>
          <div class="buttons">
            <button onClick={() => judge("accepted")}>Accept (a)</button>
            <button onClick={() => judge("rejected")}>Reject (r)</button>
            <button disabled={!accepted.length} onClick={file}>
              File {accepted.length} accepted into a segment
            </button>
          </div>
          {filed && (
            <p class={filed.startsWith("error") ? "error" : "saved"}>
              {filed.startsWith("error") ? filed : (
                <>
                  Filed into <a href={href("projects", ds.project, "datasets", ds.dataset, "segments", filed.split("/").pop()!)}>{filed.split("/").pop()}</a>
                </>
              )}
            </p>
          )}
        </div>
      </div>
    </>
  );
}

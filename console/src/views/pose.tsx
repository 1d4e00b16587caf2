// Pose: the keypoint checks of a version (swapped left/right pairs, points outside the image or box, missing points,
// bone-length outliers, duplicates) as a review queue, each candidate drawn with the rig's colours and edges.
import { metrics, versioning } from "../api";
import type { DatasetRoute } from "../main";
import { Loading, useAsync } from "../util";
import { useColours, VersionPicker } from "./common";
import { ReviewQueue } from "./review";

export function Pose({ ds }: { ds: DatasetRoute }) {
  const colours = useColours(ds);
  const version = ds.query.get("version") ?? "";
  const checked = useAsync(async () => {
    const concrete = version && !version.startsWith("@") ? BigInt(version) : undefined;
    const ref = concrete
      ? `${ds.name}/versions/${concrete}`
      : version.startsWith("@")
        ? `${ds.name}/versions/${(await versioning.getCheckpoint({ name: `${ds.name}/checkpoints/${version.slice(1)}` })).version}`
        : `${ds.name}/versions/${(await versioning.getDataset({ name: ds.name })).latestVersion}`;
    return metrics.checkKeypoints({ datasetVersion: ref, pageSize: 1000 });
  }, [ds.name, version]);
  return (
    <section class="pose">
      <div class="toolbar">
        <h1>Keypoint checks</h1>
        <VersionPicker ds={ds} />
      </div>
      <Loading state={checked}>
        {(r) => (
          <>
            <p class="muted" data-checked={String(r.labelsChecked)}>
              {String(r.labelsChecked)} skeletons checked at version {String(r.datasetVersion)}: {String(r.totalCandidates)} candidates.
            </p>
            <ReviewQueue
              ds={ds}
              version={r.datasetVersion}
              candidates={r.candidates}
              colours={colours}
              source={`${ds.name}/versions/${r.datasetVersion}`}
              segmentName={`Keypoint findings confirmed at version ${r.datasetVersion}`}
              segmentPrefix="keypoint-review"
            />
          </>
        )}
      </Loading>
    </section>
  );
}

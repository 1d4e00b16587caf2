// Embeddings: the 2-D projection of a version's frame index as a WebGL scatter, coloured by class or a metadata
// field; hover shows the frame, a lasso (shift + drag) selects frames to open or save as a segment, "more like this"
// searches from a frame, and selection strategies save a segment of the size a slider sets.
import createScatterplot from "regl-scatterplot";
import { useEffect, useRef, useState } from "preact/hooks";
import { embeddings, explain, finished, versioning } from "../api";
import { Code, ConnectError } from "@connectrpc/connect";
import { EmbeddingKind, IndexState, SelectionInputType, SelectionStrategyType } from "../gen/shoal/v1/embedding_pb";
import { ProjectionMethod } from "../gen/shoal/v1/embedding_service_pb";
import type { Frame } from "../gen/shoal/v1/frame_pb";
import type { DatasetRoute } from "../main";
import { LabeledImage, type Palette } from "../labels";
import { href, navigate, withQuery } from "../router";
import { Loading, metaValue, useAsync } from "../util";
import { useColours, VersionPicker } from "./common";

const MAX_POINTS = 100_000;

type Points = { ids: string[]; x: Float32Array; y: Float32Array };

async function concreteVersion(ds: DatasetRoute): Promise<bigint> {
  const v = ds.query.get("version") ?? "";
  if (!v) return (await versioning.getDataset({ name: ds.name })).latestVersion;
  if (v.startsWith("@")) return (await versioning.getCheckpoint({ name: `${ds.name}/checkpoints/${v.slice(1)}` })).version;
  return BigInt(v);
}

export function Embeddings({ ds }: { ds: DatasetRoute }) {
  const colours = useColours(ds);
  const colourBy = ds.query.get("color") ?? "class";
  const [built, setBuilt] = useState(0);
  const index = useAsync(async () => {
    const version = await concreteVersion(ds);
    const name = `${ds.name}/versions/${version}/indexes/frame`;
    try {
      return { version, index: await embeddings.getIndex({ name }), name };
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return { version, index: null, name };
      throw err;
    }
  }, [ds.name, ds.query.get("version"), built]);
  const [building, setBuilding] = useState("");
  async function build(version: bigint) {
    setBuilding("building…");
    try {
      const op = await embeddings.buildIndex({ parent: `${ds.name}/versions/${version}`, kind: EmbeddingKind.FRAME });
      await finished(op);
      setBuilding("");
      setBuilt((b) => b + 1);
    } catch (err) {
      setBuilding(explain(err));
    }
  }
  return (
    <section class="embeddings">
      <div class="toolbar">
        <VersionPicker ds={ds} />
        <label class="picker">
          Colour by
          <select name="color" value={colourBy} onChange={(e) => navigate(withQuery({ color: (e.target as HTMLSelectElement).value }))}>
            <option value="class">class</option>
            <MetadataOptions ds={ds} />
          </select>
        </label>
      </div>
      <Loading state={index}>
        {({ version, index: idx, name }) =>
          !idx || idx.state !== IndexState.READY ? (
            <div>
              <p class="muted">{idx ? `The index of version ${version} is ${IndexState[idx.state].toLowerCase()}.` : `Version ${version} has no frame index yet.`}</p>
              <button onClick={() => build(version)} disabled={!!building}>
                Build the index of version {String(version)}
              </button>
              {building && <p class="muted">{building}</p>}
            </div>
          ) : (
            <Scatter key={name} ds={ds} index={name} version={version} colours={colours} colourBy={colourBy} />
          )
        }
      </Loading>
    </section>
  );
}

function MetadataOptions({ ds }: { ds: DatasetRoute }) {
  const d = useAsync(() => versioning.getDataset({ name: ds.name }), [ds.name]);
  return (
    <>
      {(d.data?.metadataSchema?.fields ?? []).map((f) => (
        <option key={f.name} value={"metadata." + f.name}>
          {f.name}
        </option>
      ))}
    </>
  );
}

async function loadPoints(index: string): Promise<Points> {
  const ids: string[] = [];
  const xs: number[] = [];
  const ys: number[] = [];
  let token = "";
  do {
    const r = await embeddings.projectEmbeddings({ index, method: ProjectionMethod.UNSPECIFIED, pageSize: MAX_POINTS, pageToken: token });
    for (const p of r.points) {
      ids.push(p.frameId);
      xs.push(p.x);
      ys.push(p.y);
    }
    token = r.nextPageToken;
  } while (token && ids.length < MAX_POINTS);
  performance.mark("shoal:points-loaded");
  // Into the scatter's [-1, 1] square, keeping the aspect.
  const min = (a: number[]) => a.reduce((m, v) => Math.min(m, v), Infinity);
  const max = (a: number[]) => a.reduce((m, v) => Math.max(m, v), -Infinity);
  const [x0, x1, y0, y1] = [min(xs), max(xs), min(ys), max(ys)];
  const span = Math.max(x1 - x0, y1 - y0) || 1;
  const x = new Float32Array(xs.length);
  const y = new Float32Array(ys.length);
  for (let i = 0; i < xs.length; i++) {
    x[i] = (1.9 * (xs[i] - (x0 + x1) / 2)) / span;
    y[i] = (1.9 * (ys[i] - (y0 + y1) / 2)) / span;
  }
  return { ids, x, y };
}

/** Each point's colour group: its frame's most frequent class, or the value of a metadata field. */
async function groups(ds: DatasetRoute, version: bigint, ids: string[], by: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token = "";
  const field = by.startsWith("metadata.") ? by.slice("metadata.".length) : "";
  do {
    const r = await versioning.listFrames({
      parent: `${ds.name}/versions/${version}`,
      pageSize: 1000,
      pageToken: token,
      readMask: { paths: field ? ["frame_id", "user_metadata"] : ["frame_id", "labels"] },
    });
    for (const f of r.frames) out.set(f.frameId, field ? metaValue(f.userMetadata[field]) : majority(f));
    token = r.nextPageToken;
  } while (token && out.size < ids.length);
  return out;
}

function majority(f: Frame): string {
  const counts = new Map<string, number>();
  for (const l of f.labels) counts.set(l.classification, (counts.get(l.classification) ?? 0) + 1);
  let best = "";
  let n = 0;
  for (const [k, v] of counts) if (v > n) [best, n] = [k, v];
  return best || "(none)";
}

function Scatter({ ds, index, version, colours, colourBy }: { ds: DatasetRoute; index: string; version: bigint; colours: Palette; colourBy: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const plot = useRef<ReturnType<typeof createScatterplot> | null>(null);
  const points = useAsync(() => loadPoints(index), [index]);
  const colourGroups = useAsync(() => (points.data ? groups(ds, version, points.data.ids, colourBy) : Promise.resolve(new Map())), [points.data, colourBy]);
  const [selected, setSelected] = useState<number[]>([]);
  const [hover, setHover] = useState<number | null>(null);
  const [saved, setSaved] = useState("");
  const [legend, setLegend] = useState<[string, string][]>([]);

  useEffect(() => {
    if (!points.data || !canvas.current) return;
    const box = canvas.current.parentElement!.getBoundingClientRect();
    const sp = createScatterplot({ canvas: canvas.current, width: box.width, height: box.height, pointSize: 7, lassoMinDelay: 5, lassoMinDist: 2 });
    plot.current = sp;
    sp.subscribe("select", ({ points: p }) => setSelected([...p]));
    sp.subscribe("deselect", () => setSelected([]));
    sp.subscribe("pointOver", (i) => setHover(i));
    sp.subscribe("pointOut", () => setHover(null));
    performance.mark("shoal:scatter-draw");
    sp.draw({ x: points.data.x, y: points.data.y }).then(() => {
      performance.mark("shoal:scatter-drawn");
      canvas.current?.setAttribute("data-drawn", String(points.data!.ids.length));
    });
    return () => sp.destroy();
  }, [points.data]);

  useEffect(() => {
    const sp = plot.current;
    const data = points.data;
    const g = colourGroups.data;
    if (!sp || !data || !g || !g.size) return;
    const names = [...new Set(data.ids.map((id) => g.get(id) ?? ""))].sort();
    const at = new Map(names.map((n, i) => [n, i]));
    const category = new Float32Array(data.ids.length);
    data.ids.forEach((id, i) => (category[i] = at.get(g.get(id) ?? "") ?? 0));
    const fill = names.map((n) => (colourBy === "class" ? colours.colour(n) : hsl(at.get(n)!, names.length)));
    sp.set({ pointColor: fill.map(toHex), colorBy: "category" });
    sp.draw({ x: data.x, y: data.y, category }, { preventFilterReset: true });
    setLegend(names.map((n, i) => [n, fill[i]]));
  }, [colourGroups.data, points.data]);

  const ids = points.data?.ids ?? [];
  const chosen = selected.map((i) => ids[i]);
  async function saveSegment() {
    const id = `lasso-${Date.now().toString(36)}`;
    try {
      const s = await versioning.createSegment({
        parent: ds.name,
        segmentId: id,
        segment: { displayName: `${chosen.length} frames lassoed in the embeddings view`, version, frameIds: chosen, source: index },
      });
      setSaved(s.name);
    } catch (err) {
      setSaved("error: " + explain(err));
    }
  }
  return (
    <div class="scatter-layout">
      <div class="scatter-box">
        <Loading state={points}>{(p) => <span class="muted">{p.ids.length.toLocaleString("en")} frames · shift + drag to lasso</span>}</Loading>
        <div class="scatter">
          <canvas ref={canvas} aria-label="embedding projection" />
        </div>
        <ul class="legend">
          {legend.map(([n, c]) => (
            <li key={n}>
              <span class="swatch" style={{ background: c }} /> {n || "(none)"}
            </li>
          ))}
        </ul>
      </div>
      <aside>
        {hover !== null && ids[hover] && <Hovered ds={ds} version={version} frameId={ids[hover]} colours={colours} />}
        <h2>Selection</h2>
        <p data-selected={chosen.length}>{chosen.length ? `${chosen.length} frames selected` : "Nothing selected: shift + drag around points."}</p>
        {chosen.length > 0 && (
          <div class="buttons">
            <button onClick={saveSegment}>Save as segment</button>
            <a class="button" href={withQuery({ version: String(version) }, href("projects", ds.project, "datasets", ds.dataset, "frames", chosen[0]))}>
              Open the first
            </a>
            {chosen.length === 1 && <MoreLikeThis ds={ds} index={index} frameId={chosen[0]} onFound={(found) => plot.current?.select(found.map((f) => ids.indexOf(f)).filter((i) => i >= 0))} />}
          </div>
        )}
        {saved && (
          <p class={saved.startsWith("error") ? "error" : "saved"}>
            {saved.startsWith("error") ? saved : (
              <>
                Saved <a href={href("projects", ds.project, "datasets", ds.dataset, "segments", saved.split("/").pop()!)}>{saved.split("/").pop()}</a>
              </>
            )}
          </p>
        )}
        <Strategies ds={ds} version={version} />
      </aside>
    </div>
  );
}

function MoreLikeThis({ index, frameId, onFound }: { ds: DatasetRoute; index: string; frameId: string; onFound: (ids: string[]) => void }) {
  const [error, setError] = useState("");
  return (
    <>
      <button
        onClick={async () => {
          try {
            const r = await embeddings.search({ index, queries: [{ query: { case: "frameId", value: frameId } }], k: 20 });
            onFound(r.results[0]?.neighbors.map((n) => n.frameId) ?? []);
          } catch (err) {
            setError(explain(err));
          }
        }}
      >
        More like this
      </button>
      {error && <p class="error">{error}</p>}
    </>
  );
}

function Strategies({ ds, version }: { ds: DatasetRoute; version: bigint }) {
  const [strategy, setStrategy] = useState(SelectionStrategyType.DIVERSITY);
  const [count, setCount] = useState(20);
  const [result, setResult] = useState("");
  async function run() {
    setResult("selecting…");
    try {
      const id = `selection-${Date.now().toString(36)}`;
      const op = await embeddings.selectSamples({
        parent: `${ds.name}/versions/${version}`,
        criteria: [{ input: { type: SelectionInputType.EMBEDDINGS }, strategy, strength: 1 }],
        amount: { case: "count", value: count },
        segmentId: id,
      });
      await finished(op);
      setResult(`${ds.name}/segments/${id}`);
    } catch (err) {
      setResult("error: " + explain(err));
    }
  }
  return (
    <div class="strategies">
      <h2>Select samples</h2>
      <label class="picker">
        Strategy
        <select value={strategy} onChange={(e) => setStrategy(Number((e.target as HTMLSelectElement).value))}>
          <option value={SelectionStrategyType.DIVERSITY}>diversity</option>
          <option value={SelectionStrategyType.BALANCE}>balance</option>
        </select>
      </label>
      <label class="picker">
        Count {count}
        <input type="range" min={1} max={500} value={count} onInput={(e) => setCount(Number((e.target as HTMLInputElement).value))} />
      </label>
      <button onClick={run}>Save selection as segment</button>
      {result && (
        <p class={result.startsWith("error") ? "error" : ""}>
          {result.startsWith("projects/") ? <a href={href("projects", ds.project, "datasets", ds.dataset, "segments", result.split("/").pop()!)}>{result.split("/").pop()}</a> : result}
        </p>
      )}
    </div>
  );
}

function Hovered({ ds, version, frameId, colours }: { ds: DatasetRoute; version: bigint; frameId: string; colours: Palette }) {
  const f = useAsync(() => versioning.getFrame({ name: `${ds.name}/versions/${version}/frames/${frameId}` }), [frameId]);
  return (
    <div class="hovered">
      <Loading state={f}>{(frame) => <LabeledImage frame={frame} truth={frame.labels} colours={colours} fit={[260, 195]} />}</Loading>
      <span class="caption">{frameId}</span>
    </div>
  );
}

function hsl(i: number, n: number): string {
  return `hsl(${Math.round((360 * i) / Math.max(1, n))} 65% 50%)`;
}

function toHex(colour: string): string {
  const c = document.createElement("canvas").getContext("2d")!;
  c.fillStyle = colour;
  return c.fillStyle as string;
}

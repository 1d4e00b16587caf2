// The frame grid: pages of 200 frames from ListFrames (or, with an inference set, ListInferenceFrames: ground truth
// and predictions together), drawn with their labels. Only the rows in view are in the page and only the pages
// around them are held, so memory stays flat however far one scrolls.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { versioning } from "../api";
import type { Frame } from "../gen/shoal/v1/frame_pb";
import type { Label } from "../gen/shoal/v1/label_pb";
import type { DatasetRoute } from "../main";
import { LabeledImage } from "../labels";
import { href, navigate, withQuery } from "../router";
import { explain, isAuthError } from "../api";
import { useAsync } from "../util";
import { useColours, VersionPicker, versionRef } from "./common";

export const PAGE = 200;
const TILE_W = 188;
const TILE_H = 168;
const IMAGE: [number, number] = [180, 135];
const KEEP_PAGES = 2; // pages held on either side of those in view

type Item = { frame: Frame; predictions?: Label[] };

class Pager {
  tokens: string[] = [""];
  counts: number[] = [];
  pages = new Map<number, Item[]>();
  loading = new Set<number>();
  done = false;
  error = "";
  constructor(
    private fetch: (token: string) => Promise<{ items: Item[]; next: string }>,
    private changed: () => void,
  ) {}
  // starts[p]: the position of page p's first frame (starts[counts.length] is the frames known), kept in step with
  // `counts`, so finding a tile's page is a binary search however deep the grid has scrolled.
  private starts: number[] = [0];
  get loaded(): number {
    return this.starts[this.counts.length];
  }
  get known(): number {
    return this.loaded + (this.done ? 0 : PAGE);
  }
  pageOf(i: number): number {
    let lo = 0;
    let hi = this.counts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (i >= this.starts[mid + 1]) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  item(i: number): Item | undefined {
    const page = this.pageOf(i);
    return this.pages.get(page)?.[i - this.starts[page]];
  }
  /** Loads what rows [first, last) need and drops pages far from them. */
  want(first: number, last: number): void {
    const a = this.pageOf(first);
    const b = this.pageOf(Math.max(first, last - 1));
    for (const p of this.pages.keys()) if (p < a - KEEP_PAGES || p > b + KEEP_PAGES) this.pages.delete(p);
    for (let p = a; p <= b + 1; p++) this.load(p);
  }
  private load(p: number): void {
    if (this.pages.has(p) || this.loading.has(p) || p >= this.tokens.length || this.error) return;
    if (p > 0 && this.done && p >= this.counts.length) return;
    this.loading.add(p);
    this.fetch(this.tokens[p]).then(
      ({ items, next }) => {
        this.loading.delete(p);
        this.pages.set(p, items);
        this.counts[p] = items.length;
        for (let q = p; q < this.counts.length; q++) this.starts[q + 1] = this.starts[q] + this.counts[q];
        if (next) this.tokens[p + 1] = next;
        else if (p + 1 >= this.tokens.length) this.done = true;
        this.changed();
        // For whoever measures the console (bench/console.py): when the first page is on screen.
        if (p === 0) requestAnimationFrame(() => performance.mark("shoal:grid-first-page"));
      },
      (err) => {
        this.loading.delete(p);
        if (isAuthError(err)) navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
        this.error = explain(err);
        this.changed();
      },
    );
  }
}

export function Grid({ ds }: { ds: DatasetRoute }) {
  const version = ds.query.get("version") ?? "";
  const filter = ds.query.get("filter") ?? "";
  const inference = ds.query.get("inference") ?? "";
  const show = ds.query.get("show") ?? "both";
  const colours = useColours(ds);
  const sets = useAsync(() => versioning.listInferenceSets({ parent: ds.name, pageSize: 1000 }), [ds.name]);
  const [, redraw] = useState(0);
  const pager = useRef<Pager | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, width: 1200, height: 800 });
  const [draft, setDraft] = useState(filter);
  useEffect(() => setDraft(filter), [filter]);

  const identity = `${ds.name}|${version}|${filter}|${inference}`;
  if (!pager.current || (pager.current as unknown as { id: string }).id !== identity) {
    // The first page names the version it read; every page after (and the first, read again) reads that one.
    let pinned = version ? versionRef(ds) : "";
    const fetch = inference
      ? (token: string) =>
          versioning.listInferenceFrames({ parent: `${ds.name}/inferenceSets/${inference}`, pageSize: PAGE, pageToken: token }).then((r) => ({
            items: r.frames.map((p) => ({ frame: p.groundTruth ?? p.inference!, predictions: p.inference?.labels ?? [] }) as Item),
            next: r.nextPageToken,
          }))
      : (token: string) =>
          // Only what a tile draws: the table reads just these columns.
          versioning.listFrames({ parent: pinned || versionRef(ds), pageSize: PAGE, pageToken: token, filter, readMask: { paths: ["frame_id", "sensors", "labels"] } }).then((r) => {
            pinned ||= `${ds.name}/versions/${r.version}`;
            return { items: r.frames.map((frame) => ({ frame })), next: r.nextPageToken };
          });
    const p = new Pager(fetch as (t: string) => Promise<{ items: Item[]; next: string }>, () => redraw((n) => n + 1));
    (p as unknown as { id: string }).id = identity;
    pager.current = p;
    if (scroller.current) scroller.current.scrollTop = 0;
  }
  const p = pager.current;

  useLayoutEffect(() => {
    const el = scroller.current!;
    const measure = () => setView({ top: el.scrollTop, width: el.clientWidth, height: el.clientHeight });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    el.addEventListener("scroll", measure, { passive: true });
    return () => {
      ro.disconnect();
      el.removeEventListener("scroll", measure);
    };
  }, []);

  const side = inference && show === "side";
  const tileW = side ? TILE_W * 2 : TILE_W;
  const cols = Math.max(1, Math.floor(view.width / tileW));
  const firstRow = Math.max(0, Math.floor(view.top / TILE_H) - 2);
  const lastRow = Math.ceil((view.top + view.height) / TILE_H) + 2;
  const total = p.known;
  const first = firstRow * cols;
  const last = Math.min(total, lastRow * cols);
  useEffect(() => p.want(first, Math.max(last, first + 1)), [p, first, last, p.counts.length]);

  const tiles = [];
  for (let i = first; i < last; i++) {
    const item = p.item(i);
    const x = (i % cols) * tileW;
    const y = Math.floor(i / cols) * TILE_H;
    const style = { transform: `translate(${x}px, ${y}px)`, width: `${tileW - 8}px` };
    if (!item) {
      tiles.push(<div class="tile placeholder" style={style} key={i} />);
      continue;
    }
    const f = item.frame;
    const truth = show === "predictions" ? [] : f.labels;
    const preds = show === "truth" ? [] : (item.predictions ?? []);
    const link = withQuery({ version }, href("projects", ds.project, "datasets", ds.dataset, "frames", f.frameId));
    tiles.push(
      <a class="tile" style={style} key={f.frameId} href={link} data-frame={f.frameId} title={f.frameId}>
        <div class="tile-images">
          {side ? (
            <>
              <LabeledImage frame={f} truth={f.labels} colours={colours} fit={IMAGE} />
              <LabeledImage frame={f} truth={[]} predictions={item.predictions ?? []} colours={colours} fit={IMAGE} />
            </>
          ) : (
            <LabeledImage frame={f} truth={truth} predictions={preds} colours={colours} fit={IMAGE} />
          )}
        </div>
        <span class="caption">{f.frameId}</span>
      </a>,
    );
  }
  const loaded = p.loaded;
  return (
    <section class="grid-view">
      <div class="toolbar">
        <VersionPicker ds={ds} />
        <form
          class="filter"
          onSubmit={(e) => {
            e.preventDefault();
            navigate(withQuery({ filter: draft.trim() }));
          }}
        >
          <input
            name="filter"
            placeholder={'Filter, e.g. labels.classification = "car" AND count(labels) > 2'}
            value={draft}
            onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
            disabled={!!inference}
            title={inference ? "Filters apply to the dataset's frames; pick no inference set to filter" : "The API's filter language"}
          />
          <button type="submit" disabled={!!inference}>
            Filter
          </button>
        </form>
        <label class="picker">
          Predictions
          <select name="inference" value={inference} onChange={(e) => navigate(withQuery({ inference: (e.target as HTMLSelectElement).value }))}>
            <option value="">none</option>
            {(sets.data?.inferenceSets ?? []).map((s) => {
              const id = s.name.split("/").pop()!;
              return (
                <option key={s.name} value={id}>
                  {id} (v{String(s.datasetVersion)})
                </option>
              );
            })}
          </select>
        </label>
        {inference && (
          <label class="picker">
            Show
            <select name="show" value={show} onChange={(e) => navigate(withQuery({ show: (e.target as HTMLSelectElement).value }))}>
              <option value="both">both, overlaid</option>
              <option value="side">side by side</option>
              <option value="truth">ground truth</option>
              <option value="predictions">predictions</option>
            </select>
          </label>
        )}
        <span class="muted count" data-loaded={loaded}>
          {p.done ? `${loaded.toLocaleString("en")} frames` : `${loaded.toLocaleString("en")}+ frames`}
        </span>
      </div>
      {p.error && (
        <p class="error" role="alert">
          {p.error}
        </p>
      )}
      {!p.error && p.done && loaded === 0 && <p class="muted">No frames match.</p>}
      <div class="grid-scroll" ref={scroller}>
        <div class="grid-space" style={{ height: `${Math.ceil(total / cols) * TILE_H}px` }}>
          {tiles}
        </div>
      </div>
    </section>
  );
}

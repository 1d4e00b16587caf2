// One label renderer for every view: boxes, polygons, keypoints with the rig's colours and edges, line segments and
// whole-image classes, coloured from the class map. Ground truth is drawn solid, predictions dashed.
import { useEffect, useState } from "preact/hooks";
import { assetName, assets, previewUrl } from "./api";
import type { ClassMap, ClassMapEntry } from "./gen/shoal/v1/project_pb";
import type { Color } from "./gen/shoal/v1/common_pb";
import type { Frame } from "./gen/shoal/v1/frame_pb";
import type { Label } from "./gen/shoal/v1/label_pb";

export type Palette = {
  colour: (className: string) => string;
  entry: (className: string) => ClassMapEntry | undefined;
  /** The colour of a class id of the class map (mask pixels hold class ids). */
  colourOfId: (classId: number) => string | undefined;
  /** The class map has been read (until then colours are placeholders). */
  ready: boolean;
};

function css(c?: Color): string | undefined {
  return c && (c.red || c.green || c.blue) ? `rgb(${c.red},${c.green},${c.blue})` : undefined;
}

function hashed(name: string): string {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 70% 55%)`;
}

export function palette(classMap?: ClassMap, ready = classMap !== undefined): Palette {
  const byName = new Map((classMap?.entries ?? []).map((e) => [e.name, e]));
  const byId = new Map((classMap?.entries ?? []).map((e) => [e.classId, e]));
  const colour = (name: string) => css(byName.get(name)?.color) ?? hashed(name);
  return {
    colour,
    ready,
    entry: (name) => byName.get(name),
    colourOfId: (id) => {
      const e = byId.get(id);
      return e ? colour(e.name) : undefined;
    },
  };
}

/** The first image sensor of a frame (or the one named), with its size. */
export function imageOf(frame: Frame, sensorId = "") {
  for (const s of frame.sensors) {
    if (s.data.case === "image" && (!sensorId || s.sensorId === sensorId)) return { sensorId: s.sensorId, ...s.data.value };
  }
  return undefined;
}

export function usePreview(url = "", preview = ""): string {
  const [src, setSrc] = useState("");
  useEffect(() => {
    let live = true;
    setSrc("");
    if (url) previewUrl(url, preview).then((u) => live && setSrc(u));
    return () => {
      live = false;
    };
  }, [url, preview]);
  return src;
}

type Props = {
  frame: Frame;
  truth: Label[];
  predictions?: Label[];
  colours: Palette;
  names?: boolean;
  sensorId?: string;
  /** The box to fit the image in (width, height), keeping its aspect; without it the image takes the width. */
  fit?: [number, number];
  /** Draw segmentation masks too (read from the asset service: one stream per mask, so not in grids). */
  masks?: boolean;
};

/** The frame's image with its labels drawn over it, scaled to the box it is given. */
export function LabeledImage({ frame, truth, predictions = [], colours, names = false, sensorId = "", fit, masks = false }: Props) {
  const image = imageOf(frame, sensorId);
  const src = usePreview(image?.url, image?.previewUrl);
  const [natural, setNatural] = useState<[number, number] | null>(null);
  const w = image?.width || natural?.[0] || 0;
  const h = image?.height || natural?.[1] || 0;
  const sensor = image?.sensorId ?? "";
  const mine = (l: Label) => !l.sensorId || !sensor || l.sensorId === sensor;
  return (
    <div class="labeled" data-frame={frame.frameId} style={sized(w, h, fit)}>
      {src ? (
        <img src={src} alt={frame.frameId} loading="lazy" onLoad={(e) => setNatural([(e.target as HTMLImageElement).naturalWidth, (e.target as HTMLImageElement).naturalHeight])} />
      ) : (
        <div class="noimage">{image ? "" : "no image"}</div>
      )}
      {w > 0 && h > 0 && (
        <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" aria-hidden="true">
          {masks &&
            colours.ready &&
            truth
              .filter(mine)
              .filter((l) => l.geometry.case === "semanticSegmentation2d" || l.geometry.case === "instanceSegmentation2d")
              .map((l) => <Mask key={"m" + l.labelId} label={l} colours={colours} width={w} height={h} />)}
          {truth.filter(mine).map((l) => (
            <Shape key={"t" + l.labelId} label={l} colours={colours} dashed={false} names={names} scale={Math.max(w, h) / 700} />
          ))}
          {predictions.filter(mine).map((l) => (
            <Shape key={"p" + l.labelId} label={l} colours={colours} dashed={true} names={names} scale={Math.max(w, h) / 700} />
          ))}
        </svg>
      )}
    </div>
  );
}

function sized(w: number, h: number, fit?: [number, number]) {
  if (!w || !h) return fit ? { width: `${fit[0]}px`, height: `${fit[1]}px` } : undefined;
  if (!fit) return { aspectRatio: `${w} / ${h}` };
  const s = Math.min(fit[0] / w, fit[1] / h);
  return { width: `${Math.round(w * s)}px`, height: `${Math.round(h * s)}px` };
}

function Shape({ label, colours, dashed, names, scale }: { label: Label; colours: Palette; dashed: boolean; names: boolean; scale: number }) {
  const colour = colours.colour(label.classification);
  const stroke = Math.max(1, 2 * scale);
  const common = {
    stroke: colour,
    "stroke-width": stroke,
    "stroke-dasharray": dashed ? `${4 * stroke} ${2 * stroke}` : undefined,
    fill: "none",
    "vector-effect": "non-scaling-stroke",
    "data-label": label.labelId,
    "data-class": label.classification,
  } as Record<string, unknown>;
  const caption = (x: number, y: number) =>
    names ? (
      <text x={x} y={y - 3 * scale} fill={colour} font-size={12 * scale} font-weight="600" paint-order="stroke" stroke="#000a" stroke-width={2 * scale}>
        {label.classification}
        {label.confidence !== undefined ? ` ${label.confidence.toFixed(2)}` : ""}
      </text>
    ) : null;
  const g = label.geometry;
  switch (g.case) {
    case "box2d": {
      const b = g.value;
      return (
        <g class={dashed ? "pred" : "truth"}>
          <rect x={b.left} y={b.top} width={b.width} height={b.height} {...common} />
          {caption(b.left, b.top)}
        </g>
      );
    }
    case "polygonList2d":
      return (
        <g class={dashed ? "pred" : "truth"}>
          {g.value.polygons.map((p, i) => (
            <polygon key={i} points={p.vertices.map((v) => `${v.x},${v.y}`).join(" ")} {...common} fill={colour} fill-opacity="0.15" />
          ))}
          {g.value.polygons[0]?.vertices[0] && caption(g.value.polygons[0].vertices[0].x, g.value.polygons[0].vertices[0].y)}
        </g>
      );
    case "keypoints2d": {
      const entry = colours.entry(label.classification);
      const at = new Map(g.value.keypoints.filter((k) => k.visibility !== 1).map((k) => [k.name, k]));
      const kpColour = new Map((entry?.keypoints ?? []).map((k) => [k.name, css(k.color) ?? colour]));
      return (
        <g class={dashed ? "pred" : "truth"}>
          {(entry?.skeleton ?? []).map((e, i) => {
            const a = at.get(e.fromKeypoint);
            const b = at.get(e.toKeypoint);
            return a && b ? <line key={i} x1={a.x} y1={a.y} x2={b.x} y2={b.y} {...common} stroke={css(e.color) ?? colour} /> : null;
          })}
          {[...at.values()].map((k) => (
            <circle key={k.name} cx={k.x} cy={k.y} r={3 * scale} fill={kpColour.get(k.name) ?? colour} stroke="#000" stroke-width={0.5 * scale} opacity={k.visibility === 2 ? 0.5 : 1}>
              <title>{k.name}</title>
            </circle>
          ))}
          {g.value.box && <rect x={g.value.box.left} y={g.value.box.top} width={g.value.box.width} height={g.value.box.height} {...common} stroke-opacity="0.5" />}
        </g>
      );
    }
    case "lineSegment2d": {
      const { start, end } = g.value;
      return start && end ? <line x1={start.x} y1={start.y} x2={end.x} y2={end.y} {...common} /> : null;
    }
    default:
      return null;
  }
}

/** Whole-image classes and labels that have no 2-D shape, as chips. */
export function Chips({ labels, colours }: { labels: Label[]; colours: Palette }) {
  const flat = labels.filter((l) => l.geometry.case === "classification2d");
  return (
    <span class="chips">
      {flat.map((l) => (
        <span key={l.labelId} class="chip" style={{ borderColor: colours.colour(l.classification) }}>
          {l.classification}
        </span>
      ))}
    </span>
  );
}

// Masks: PNGs of class ids (semantic) or instance ids (instance), read through ReadAsset, coloured from the class
// map into an overlay. 8-bit masks only: the browser reduces 16-bit PNGs to 8 bits when it decodes them.
const overlays = new Map<string, Promise<string>>();
const OVERLAYS = 64;

function rgb(colour: string): [number, number, number] {
  const c = document.createElement("canvas").getContext("2d")!;
  c.fillStyle = colour;
  const hex = String(c.fillStyle);
  if (hex.startsWith("#")) return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
  const m = hex.match(/\d+/g) ?? ["0", "0", "0"];
  return [Number(m[0]), Number(m[1]), Number(m[2])];
}

async function overlay(name: string, colourOf: (id: number) => string | undefined): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const part of assets.readAsset({ name })) chunks.push(part.chunk);
  const bitmap = await createImageBitmap(new Blob(chunks as BlobPart[], { type: "image/png" }));
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d")!;
  ctx.drawImage(bitmap, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const table = new Map<number, [number, number, number] | null>();
  for (let i = 0; i < pixels.data.length; i += 4) {
    const id = pixels.data[i];
    if (!table.has(id)) {
      const c = id === 0 ? undefined : colourOf(id);
      table.set(id, c ? rgb(c) : null);
    }
    const c = table.get(id);
    if (c) [pixels.data[i], pixels.data[i + 1], pixels.data[i + 2], pixels.data[i + 3]] = [c[0], c[1], c[2], 255];
    else pixels.data[i + 3] = 0;
  }
  ctx.putImageData(pixels, 0, 0);
  const blob = await new Promise<Blob>((resolve) => canvas.toBlob((b) => resolve(b!), "image/png"));
  return URL.createObjectURL(blob);
}

function Mask({ label, colours, width, height }: { label: Label; colours: Palette; width: number; height: number }) {
  const [src, setSrc] = useState("");
  const g = label.geometry;
  const url = g.case === "semanticSegmentation2d" || g.case === "instanceSegmentation2d" ? g.value.maskUrl : "";
  useEffect(() => {
    const name = assetName(url);
    if (!name) return;
    let live = true;
    const key = `${name}#${label.labelId}`;
    let made = overlays.get(key);
    if (!made) {
      const instances = g.case === "instanceSegmentation2d" ? new Map(g.value.instances.map((i) => [i.id, i.classification])) : null;
      const colourOf = (id: number) => (instances ? (instances.has(id) ? colours.colour(instances.get(id)!) : undefined) : colours.colourOfId(id));
      made = overlay(name, colourOf);
      overlays.set(key, made);
      if (overlays.size > OVERLAYS) {
        const oldest = overlays.keys().next().value as string;
        overlays.get(oldest)?.then((u) => URL.revokeObjectURL(u));
        overlays.delete(oldest);
      }
    }
    made.then(
      (u) => live && setSrc(u),
      (err) => {
        console.warn(`mask ${name} could not be drawn: ${err}`);
        overlays.delete(key);
      },
    );
    return () => {
      live = false;
    };
  }, [url, label.labelId]);
  return src ? <image href={src} x={0} y={0} width={width} height={height} opacity={0.45} preserveAspectRatio="none" data-mask={label.labelId} /> : null;
}

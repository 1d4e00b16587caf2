import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { explain, isAuthError } from "./api";
import { navigate } from "./router";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { MetadataValue } from "./gen/shoal/v1/common_pb";

export type Async<T> = { data?: T; error?: string; loading: boolean };

/** The result of `load`, run again whenever `deps` change; an API key the server refuses sends the person to log in. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> & { reload: () => void } {
  const [state, setState] = useState<Async<T>>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ data: s.data, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (err) => {
        if (!live) return;
        if (isAuthError(err)) navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
        setState({ error: explain(err), loading: false });
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function Loading<T>({ state, children }: { state: Async<T>; children: (data: T) => ComponentChildren }) {
  if (state.error) return <p class="error" role="alert">{state.error}</p>;
  if (state.data === undefined) return <p class="muted">Loading…</p>;
  return <>{children(state.data)}</>;
}

export function time(ts?: Timestamp): string {
  if (!ts) return "";
  const d = new Date(Number(ts.seconds) * 1000 + Math.round(ts.nanos / 1e6));
  return d.toISOString().replace("T", " ").slice(0, 19);
}

export function metaValue(v?: MetadataValue): string {
  if (!v) return "";
  const k = v.kind;
  switch (k.case) {
    case "stringValue":
    case "intValue":
    case "floatValue":
    case "boolValue":
      return String(k.value);
    case "stringListValue":
    case "intListValue":
    case "floatListValue":
    case "boolListValue":
      return k.value.values.map(String).join(", ");
    case "nullValue":
      return "null";
    default:
      return "";
  }
}

export function fmt(n: number | bigint | undefined, digits = 3): string {
  if (n === undefined) return "";
  if (typeof n === "bigint") return n.toLocaleString("en");
  if (!Number.isFinite(n) || n < 0) return "n/a";
  return Number.isInteger(n) ? n.toLocaleString("en") : n.toFixed(digits);
}

export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

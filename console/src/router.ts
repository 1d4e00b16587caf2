// Every view is a URL: the path names the resource as the API does, the query holds version, filter and selection.
import { useEffect, useState } from "preact/hooks";

export type Route = { path: string[]; query: URLSearchParams };

function current(): Route {
  const path = window.location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  return { path, query: new URLSearchParams(window.location.search) };
}

const listeners = new Set<() => void>();

export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listeners.forEach((l) => l());
}

/** The URL with some query parameters set (empty values removed). */
export function withQuery(changes: Record<string, string | number | undefined>, base?: string): string {
  const url = new URL(base ?? window.location.href, window.location.origin);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === "") url.searchParams.delete(k);
    else url.searchParams.set(k, String(v));
  }
  return url.pathname + url.search;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return route;
}

export function href(...parts: (string | number)[]): string {
  return "/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

/** A link that routes inside the app (and still opens a new tab on a middle click). */
export function onLink(e: MouseEvent): void {
  const a = (e.target as HTMLElement).closest("a");
  if (!a || a.target || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href);
  if (url.origin !== window.location.origin) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}

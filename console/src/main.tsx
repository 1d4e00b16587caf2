import { render } from "preact";
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { apiKey, explain, setApiKey, versioning } from "./api";
import { href, navigate, onLink, useRoute, type Route } from "./router";
import { Loading, useAsync } from "./util";
import { palette } from "./labels";
import { DatasetView } from "./views/dataset";
import { Grid } from "./views/grid";
import { FrameView } from "./views/frame";
import { Uploads } from "./views/uploads";
import { Evaluations, EvaluationView } from "./views/evaluations";
import { Embeddings } from "./views/embeddings";
import { Segments, SegmentView } from "./views/segments";
import { Pose } from "./views/pose";
import "./style.css";

export type DatasetRoute = { project: string; dataset: string; name: string; query: URLSearchParams };

const TABS: [string, string][] = [
  ["", "Overview"],
  ["frames", "Frames"],
  ["uploads", "Uploads"],
  ["evaluations", "Evaluations"],
  ["embeddings", "Embeddings"],
  ["segments", "Segments"],
  ["pose", "Pose"],
];

function Shell({ route, children }: { route: Route; children: ComponentChildren }) {
  const [p, project, d, dataset, tab] = route.path;
  const crumbs: [string, string][] = [["/", "Projects"]];
  if (p === "projects" && project) crumbs.push([href("projects", project), project]);
  if (d === "datasets" && dataset) crumbs.push([href("projects", project, "datasets", dataset), dataset]);
  return (
    <div class="shell" onClick={onLink}>
      <header>
        <a class="brand" href="/">
          Shoal
        </a>
        <nav class="crumbs" aria-label="breadcrumb">
          {crumbs.map(([url, text], i) => (
            <span key={url}>
              {i > 0 && <span class="sep">/</span>}
              <a href={url}>{text}</a>
            </span>
          ))}
        </nav>
        <button
          class="link"
          onClick={() => {
            setApiKey("");
            navigate("/login");
          }}
        >
          Sign out
        </button>
      </header>
      {dataset && (
        <nav class="tabs" aria-label="dataset views">
          {TABS.map(([path, text]) => (
            <a key={path} href={href("projects", project, "datasets", dataset) + (path ? "/" + path : "")} class={(tab ?? "") === path ? "active" : ""}>
              {text}
            </a>
          ))}
        </nav>
      )}
      <main>{children}</main>
    </div>
  );
}

function Login({ next }: { next: string }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError("");
    setApiKey(key.trim());
    try {
      await versioning.listProjects({ pageSize: 1 });
      navigate(next.startsWith("/") && !next.startsWith("//") ? next : "/");
    } catch (err) {
      setApiKey("");
      setError(explain(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="login">
      <form onSubmit={submit}>
        <h1>Shoal</h1>
        <p class="muted">Sign in with an API key. It stays in this tab only and is forgotten when the tab closes.</p>
        <label>
          API key
          <input type="password" name="apiKey" autocomplete="off" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} autofocus />
        </label>
        <button type="submit" disabled={!key.trim() || busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </div>
  );
}

function Projects() {
  const state = useAsync(() => versioning.listProjects({ pageSize: 1000 }), []);
  return (
    <Loading state={state}>
      {(r) => (
        <section>
          <h1>Projects</h1>
          {r.projects.length === 0 && <p class="muted">No projects this key can open.</p>}
          <ul class="cards">
            {r.projects.map((p) => {
              const id = p.name.split("/")[1];
              const colours = palette(p.classMap);
              return (
                <li key={p.name}>
                  <a href={href("projects", id)}>
                    <strong>{p.displayName || id}</strong>
                  </a>
                  <p class="muted">{p.description}</p>
                  <span class="chips">
                    {(p.classMap?.entries ?? []).map((e) => (
                      <span class="chip" key={e.name} style={{ borderColor: colours.colour(e.name) }}>
                        {e.name}
                      </span>
                    ))}
                  </span>
                </li>
              );
            })}
          </ul>
        </section>
      )}
    </Loading>
  );
}

function ProjectView({ project }: { project: string }) {
  const state = useAsync(
    async () => {
      const [p, ds] = await Promise.all([
        versioning.getProject({ name: `projects/${project}` }),
        versioning.listDatasets({ parent: `projects/${project}`, pageSize: 1000 }),
      ]);
      return { p, ds };
    },
    [project],
  );
  return (
    <Loading state={state}>
      {({ p, ds }) => {
        const colours = palette(p.classMap);
        return (
          <section>
            <h1>{p.displayName || project}</h1>
            <p class="muted">{p.description}</p>
            <h2>Datasets</h2>
            <table>
              <thead>
                <tr>
                  <th>Dataset</th>
                  <th class="num">Frames</th>
                  <th class="num">Latest version</th>
                  <th>Embeddings</th>
                </tr>
              </thead>
              <tbody>
                {ds.datasets.map((d) => {
                  const id = d.name.split("/")[3];
                  return (
                    <tr key={d.name}>
                      <td>
                        <a href={href("projects", project, "datasets", id)}>{d.displayName || id}</a>
                      </td>
                      <td class="num">{d.frameCount.toLocaleString("en")}</td>
                      <td class="num">{String(d.latestVersion)}</td>
                      <td>{d.embeddingDimension ? `${d.embeddingDimension}-d ${d.embeddingSource}` : "—"}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            <h2>Class map</h2>
            <table class="classmap">
              <thead>
                <tr>
                  <th>Id</th>
                  <th>Class</th>
                  <th>Category</th>
                  <th>Keypoints</th>
                </tr>
              </thead>
              <tbody>
                {(p.classMap?.entries ?? []).map((e) => (
                  <tr key={e.name}>
                    <td class="num">{e.classId}</td>
                    <td>
                      <span class="swatch" style={{ background: colours.colour(e.name) }} /> {e.name}
                    </td>
                    <td>{e.category}</td>
                    <td>{e.keypoints.map((k) => k.name).join(", ")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        );
      }}
    </Loading>
  );
}

function App() {
  const route = useRoute();
  const [first, project, second, dataset, tab, item] = route.path;
  if (first === "login") return <Login next={route.query.get("next") || "/"} />;
  if (!apiKey()) return <Login next={location.pathname + location.search} />;
  let body;
  if (!first) body = <Projects />;
  else if (first === "projects" && project && !second) body = <ProjectView project={project} />;
  else if (first === "projects" && second === "datasets" && dataset) {
    const ds: DatasetRoute = { project, dataset, name: `projects/${project}/datasets/${dataset}`, query: route.query };
    const key = `${project}/${dataset}`;
    if (!tab) body = <DatasetView key={key} ds={ds} />;
    else if (tab === "frames" && item) body = <FrameView key={key + item} ds={ds} frameId={item} />;
    else if (tab === "frames") body = <Grid key={key} ds={ds} />;
    else if (tab === "uploads") body = <Uploads key={key} ds={ds} />;
    else if (tab === "evaluations" && item && route.path[6])
      body = <EvaluationView key={key + item + route.path[6]} ds={ds} inferenceSet={item} evaluation={route.path[6]} />;
    else if (tab === "evaluations") body = <Evaluations key={key} ds={ds} />;
    else if (tab === "embeddings") body = <Embeddings key={key} ds={ds} />;
    else if (tab === "segments" && item) body = <SegmentView key={key + item} ds={ds} segment={item} />;
    else if (tab === "segments") body = <Segments key={key} ds={ds} />;
    else if (tab === "pose") body = <Pose key={key} ds={ds} />;
  }
  return <Shell route={route}>{body ?? <p class="error">Nothing lives at this address.</p>}</Shell>;
}

render(<App />, document.getElementById("app")!);

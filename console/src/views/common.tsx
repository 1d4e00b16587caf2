import { versioning } from "../api";
import type { DatasetRoute } from "../main";
import { navigate, withQuery } from "../router";
import { useAsync } from "../util";
import { palette, type Palette } from "../labels";

/** The version reference a `version` query value names: "" the newest, "7" version 7, "@gold" checkpoint gold. */
export function versionRef(ds: DatasetRoute, version = ds.query.get("version") ?? ""): string {
  if (!version) return ds.name;
  if (version.startsWith("@")) return `${ds.name}/checkpoints/${version.slice(1)}`;
  return `${ds.name}/versions/${version}`;
}

export function useVersions(ds: DatasetRoute) {
  return useAsync(
    async () => {
      const [v, c] = await Promise.all([
        versioning.listVersions({ parent: ds.name, pageSize: 1000 }),
        versioning.listCheckpoints({ parent: ds.name, pageSize: 1000 }),
      ]);
      return { versions: v.versions, checkpoints: c.checkpoints };
    },
    [ds.name],
  );
}

export function useColours(ds: DatasetRoute): Palette {
  const project = useAsync(() => versioning.getProject({ name: `projects/${ds.project}` }), [ds.project]);
  return palette(project.data?.classMap, project.data !== undefined);
}

/** Time travel: the version or checkpoint every view of a dataset reads, kept in the URL. */
export function VersionPicker({ ds, param = "version", label = "Version" }: { ds: DatasetRoute; param?: string; label?: string }) {
  const state = useVersions(ds);
  const value = ds.query.get(param) ?? "";
  return (
    <label class="picker">
      {label}
      <select
        name={param}
        value={value}
        onChange={(e) => navigate(withQuery({ [param]: (e.target as HTMLSelectElement).value }))}
      >
        <option value="">newest</option>
        {(state.data?.checkpoints ?? []).map((c) => {
          const id = c.name.split("/").pop()!;
          return (
            <option key={c.name} value={"@" + id}>
              checkpoint {id} (v{String(c.version)})
            </option>
          );
        })}
        {(state.data?.versions ?? []).map((v) => (
          <option key={v.name} value={String(v.version)}>
            version {String(v.version)}
          </option>
        ))}
      </select>
    </label>
  );
}

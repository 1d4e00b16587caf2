"""Offline checks of the Helm chart, for `make check`: no cluster and no helm binary.

For every values file: Helm's own linter in strict mode (warnings fail), the chart's values.schema.json, a render
with Helm's engine (through its SDK), then every rendered object validated by `kubernetes-validate --strict` (unknown
fields fail) against the oldest and the newest Kubernetes the chart supports. Exits non-zero on the first values
file that fails any step, naming the step and the finding.

    python deploy/chartcheck.py                       # the chart's ci/*.yaml values files
    python deploy/chartcheck.py my-values.yaml        # others
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "shoal"
# The chart's kubeVersion floor and the newest Kubernetes the validator knows.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
# Kinds of CRDs the chart renders on request; kubernetes-validate carries only the built-in schemas.
CRD_KINDS = frozenset({"ServiceMonitor"})
RELEASE = "shoal"
NAMESPACE = "shoal"
# helm lint severities: 1 info, 2 warning, 3 error.
WARNING = 2


class ChartCheckError(Exception):
    """A values file failed a check; the message names the step and the finding."""


@dataclass(frozen=True)
class Rendered:
    """One values file's render: the objects by template, and where they were written."""

    values_file: str
    objects: list[dict[str, Any]]
    notes: str
    out_dir: Path

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for obj in self.objects:
            out[obj["kind"]] = out.get(obj["kind"], 0) + 1
        return dict(sorted(out.items()))

    def named(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"no {kind} named {name} in the render of {self.values_file}")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]


def load_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ChartCheckError(f"{path}: a values file must hold a mapping, not {type(values).__name__}")
    return values


def lint(values: dict[str, Any], label: str, chart: Path = CHART) -> None:
    """`helm lint --strict` with these values: any warning or error fails."""
    report = helm.lint(chart, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSIONS[-1]}")
    findings = [
        f"[{m.get('severity')}] {m.get('path', '')}: {m.get('error', '')}"
        for m in report.get("messages", [])
        if int(m.get("severity", 0)) >= WARNING
    ]
    findings += [str(e) for e in report.get("errors", []) or []]
    if findings:
        raise ChartCheckError(f"{label}: helm lint --strict failed:\n  " + "\n  ".join(findings))


def render(values: dict[str, Any], label: str, out_dir: Path, chart: Path = CHART) -> Rendered:
    """Check the values against the schema and render; write each object to its own file under `out_dir`."""
    with helm.Chart.load(chart) as loaded:
        try:
            loaded.validate_schema(values)
        except helm.HelmError as err:
            raise ChartCheckError(f"{label}: values rejected by values.schema.json: {err}") from err
        try:
            manifests = loaded.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as err:
            raise ChartCheckError(f"{label}: render failed: {err}") from err
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.yaml"):
        old.unlink()
    objects: list[dict[str, Any]] = []
    notes = ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        try:
            docs = [doc for doc in yaml.safe_load_all(text) if doc]
        except yaml.YAMLError as err:
            raise ChartCheckError(f"{label}: {template} rendered invalid YAML: {err}") from err
        for doc in docs:
            if not isinstance(doc, dict) or "kind" not in doc:
                raise ChartCheckError(f"{label}: {template} rendered something that is not an object: {doc!r}")
            objects.append(doc)
            name = f"{len(objects):03d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
            (out_dir / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    if not objects:
        raise ChartCheckError(f"{label}: the render holds no objects")
    return Rendered(label, objects, notes, out_dir)


def validate(rendered: Rendered) -> None:
    """`kubernetes-validate --strict` on every written object, for each supported Kubernetes version."""
    files = sorted(str(p) for p in rendered.out_dir.glob("*.yaml"))
    command = [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet"]
    for version in KUBE_VERSIONS:
        command += ["-k", version]
    done = subprocess.run([*command, *files], capture_output=True, text=True, check=False)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    # A missing schema is only a warning to the validator; here it passes only for the CRD kinds.
    problems = [
        line for line in lines if not (line.startswith("WARN") and any(f"kind {k} " in line for k in CRD_KINDS))
    ]
    if done.returncode != 0 or problems:
        raise ChartCheckError(
            f"{rendered.values_file}: kubernetes-validate --strict failed:\n  " + "\n  ".join(problems or lines)
        )


def check(values_file: Path, out_root: Path, chart: Path = CHART) -> Rendered:
    label = values_file.name
    values = load_values(values_file)
    lint(values, label, chart)
    rendered = render(values, label, out_root / values_file.stem, chart)
    validate(rendered)
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("values", nargs="*", type=Path, help="values files (default: the chart's ci/*.yaml)")
    parser.add_argument("--chart", type=Path, default=CHART)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "chart", help="where rendered objects go")
    args = parser.parse_args(argv)
    values_files = args.values or sorted((args.chart / "ci").glob("*.yaml"))
    if not values_files:
        print(f"no values files to check in {args.chart / 'ci'}", file=sys.stderr)
        return 2
    for values_file in values_files:
        try:
            rendered = check(values_file, args.out, args.chart)
        except ChartCheckError as err:
            print(f"chart check FAILED: {err}", file=sys.stderr)
            return 1
        kinds = ", ".join(f"{n} {k}" for k, n in rendered.kinds().items())
        versions = " and ".join(KUBE_VERSIONS)
        print(
            f"{values_file.name}: lint clean, schema ok, {len(rendered.objects)} objects ({kinds}); "
            f"valid against Kubernetes {versions}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

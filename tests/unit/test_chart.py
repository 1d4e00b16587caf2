"""The Helm chart, rendered offline with Helm's engine and read back as objects: what every workload must carry,
how the services are wired to Redis, the object store and each other, and that the offline check (`make chart`)
fails on a broken template or a bad values file."""

from __future__ import annotations

import base64
import re
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from shoal.kit.settings import DEFAULT_GRPC_PORTS, DEFAULT_METRICS_PORTS, SERVICES

from deploy import chartcheck
from deploy.chartcheck import CHART, ChartCheckError, Rendered

CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
HEALTH_NAMES = {
    "ingest": "shoal.v1.IngestService",
    "versioning": "shoal.v1.VersioningService",
    "asset": "shoal.v1.AssetService",
    "metrics": "shoal.v1.MetricsService",
    "embedding": "shoal.v1.EmbeddingService",
}


def render(tmp_path: Path, values: dict[str, Any] | None = None) -> Rendered:
    return chartcheck.render(values or {}, "test", tmp_path / "render")


def ci_values(name: str) -> dict[str, Any]:
    return chartcheck.load_values(CHART / "ci" / f"{name}.yaml")


def deployments(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """The five services' Deployments by service name (the console's is `console_deployment`)."""
    every = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in rendered.of_kind("Deployment")}
    return {name: d for name, d in every.items() if name in SERVICES}


def console_deployment(rendered: Rendered) -> dict[str, Any] | None:
    found = [
        d for d in rendered.of_kind("Deployment") if d["metadata"]["labels"]["app.kubernetes.io/component"] == "console"
    ]
    return found[0] if found else None


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """name -> literal value, or ("secret", name, key) for secretKeyRefs."""
    out: dict[str, Any] = {}
    for item in container(deployment)["env"]:
        assert item["name"] not in out, f"{item['name']} is set twice"
        if "value" in item:
            out[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            out[item["name"]] = ("secret", ref["name"], ref["key"])
    return out


def secret_data(rendered: Rendered, name: str) -> dict[str, str]:
    secret = rendered.named("Secret", name)
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_ci_values_file_lints_renders_and_validates_strictly(values_file: Path, tmp_path: Path) -> None:
    rendered = chartcheck.check(values_file, tmp_path)
    assert rendered.of_kind("Deployment")
    assert len(list(rendered.out_dir.glob("*.yaml"))) == len(rendered.objects)


def test_the_ci_values_cover_the_cases_the_chart_promises() -> None:
    assert {p.stem for p in CI_VALUES} >= {"default", "external", "gpu", "full", "minimal"}


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_workload_has_probes_resources_and_a_hardened_security_context(values_file: Path, tmp_path: Path) -> None:
    rendered = render(tmp_path, chartcheck.load_values(values_file))
    for name, deployment in deployments(rendered).items():
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        grpc_port = DEFAULT_GRPC_PORTS[name]
        assert c["command"] == [f"shoal-{name}"]
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
            "grpc": grpc_port,
            "metrics": DEFAULT_METRICS_PORTS[name],
        }
        # Native gRPC probes: liveness on the overall status, readiness on the service's own (its dependencies).
        assert c["livenessProbe"]["grpc"] == {"port": grpc_port}
        assert c["startupProbe"]["grpc"] == {"port": grpc_port}
        assert c["readinessProbe"]["grpc"] == {"port": grpc_port, "service": HEALTH_NAMES[name]}
        assert c["resources"]["requests"]["cpu"]
        assert c["resources"]["requests"]["memory"]
        assert c["resources"]["limits"]["memory"]
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        # A read-only root needs a writable /tmp (upload spooling, multi-process metrics).
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
        assert pod["serviceAccountName"] == rendered.of_kind("ServiceAccount")[0]["metadata"]["name"]


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_env_wiring_reaches_redis_the_store_and_the_right_ports(values_file: Path, tmp_path: Path) -> None:
    values = chartcheck.load_values(values_file)
    rendered = render(tmp_path, values)
    (configmap,) = rendered.of_kind("ConfigMap")
    config = configmap["data"]
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    secrets = {s["metadata"]["name"]: s for s in rendered.of_kind("Secret")}
    for name, deployment in deployments(rendered).items():
        env = env_of(deployment)
        c = container(deployment)
        assert c["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
        assert env["SHOAL_GRPC_PORT"] == str(DEFAULT_GRPC_PORTS[name])
        assert env["SHOAL_METRICS_PORT"] == str(DEFAULT_METRICS_PORTS[name])
        for variable in ("SHOAL_ADMIN_API_KEY", "SHOAL_REDIS_URL", "SHOAL_S3_ACCESS_KEY", "SHOAL_S3_SECRET_KEY"):
            kind, secret_name, key = env[variable]
            assert kind == "secret"
            # The chart's own Secret must hold the key; a given existingSecret is the platform's to fill.
            if secret_name in secrets:
                assert key in secrets[secret_name]["data"], f"{variable}: {secret_name} has no {key}"
            else:
                assert secret_name in {"shoal-admin", "shoal-redis", "shoal-s3"}
        # Each Deployment has a Service of the same name that targets its named ports.
        service = services[deployment["metadata"]["name"]]
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
            "grpc": (DEFAULT_GRPC_PORTS[name], "grpc"),
            "metrics": (DEFAULT_METRICS_PORTS[name], "metrics"),
        }
    assert config["SHOAL_HOST"] == "0.0.0.0"
    assert config["SHOAL_STORE_URL"].startswith("s3://")
    if values.get("minio", {}).get("enabled", True):
        minio = urllib.parse.urlsplit(config["SHOAL_S3_ENDPOINT"])
        assert minio.hostname in services
        assert minio.port in {p["port"] for p in services[minio.hostname]["spec"]["ports"]}
    else:
        assert config["SHOAL_S3_ENDPOINT"] == values["objectStore"]["endpoint"]


def test_bundled_redis_url_names_the_redis_service_with_its_password(tmp_path: Path) -> None:
    rendered = render(tmp_path)
    data = secret_data(rendered, "shoal")
    url = urllib.parse.urlsplit(data["redis-url"])
    assert url.scheme == "redis"
    assert url.hostname == "shoal-redis"
    assert url.port == 6379
    assert url.password == data["redis-password"]
    assert len(data["redis-password"]) >= 32
    redis = rendered.named("StatefulSet", "shoal-redis")
    c = container(redis)
    command = " ".join(c["command"])
    assert "--appendonly yes" in command
    assert '--requirepass "$REDIS_PASSWORD"' in command
    assert env_of(redis)["REDIS_PASSWORD"] == ("secret", "shoal", "redis-password")
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert rendered.named("Service", "shoal-redis")["spec"]["ports"][0]["port"] == 6379


def test_generated_credentials_are_strong_and_given_ones_are_kept(tmp_path: Path) -> None:
    generated = secret_data(render(tmp_path), "shoal")
    assert len(generated["admin-api-key"]) == 40
    assert len(generated["s3-secret-key"]) >= 32
    assert generated["s3-access-key"] == "shoal"
    given = secret_data(render(tmp_path, ci_values("full")), "shoal-prod")
    assert given["admin-api-key"] == "a-long-random-admin-key-for-the-checks"
    assert given["s3-access-key"] == "shoal-admin"
    assert given["s3-secret-key"] == "minio-password-for-the-checks"
    assert given["redis-password"] == "redis-password-for-the-checks"
    minio = rendered_minio = render(tmp_path, ci_values("full")).named("StatefulSet", "shoal-prod-minio")
    assert env_of(rendered_minio)["MINIO_ROOT_PASSWORD"] == ("secret", "shoal-prod", "s3-secret-key")
    assert minio["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "bulk"


def test_external_redis_and_store_come_from_existing_secrets_and_nothing_is_bundled(tmp_path: Path) -> None:
    rendered = render(tmp_path, ci_values("external"))
    assert not rendered.of_kind("StatefulSet")
    assert not rendered.of_kind("Secret")
    assert not rendered.of_kind("NetworkPolicy")
    env = env_of(deployments(rendered)["versioning"])
    assert env["SHOAL_REDIS_URL"] == ("secret", "shoal-redis", "redis-url")
    assert env["SHOAL_S3_ACCESS_KEY"] == ("secret", "shoal-s3", "s3-access-key")
    assert env["SHOAL_ADMIN_API_KEY"] == ("secret", "shoal-admin", "admin-api-key")
    config = rendered.of_kind("ConfigMap")[0]["data"]
    assert config["SHOAL_STORE_URL"] == "s3://ml-datasets/shoal/prod"
    assert config["SHOAL_S3_REGION"] == "eu-west-1"
    # An external Redis by URL lands in the chart's Secret, not in the ConfigMap (it carries the password).
    by_url = render(tmp_path, {"redis": {"enabled": False, "url": "rediss://:pw@redis.internal:6380/2"}})
    assert secret_data(by_url, "shoal")["redis-url"] == "rediss://:pw@redis.internal:6380/2"
    assert "redis" not in yaml.safe_dump(by_url.of_kind("ConfigMap"))


def test_gpu_appears_only_for_the_embedding_service_and_only_when_enabled(tmp_path: Path) -> None:
    for values in ({}, ci_values("minimal"), ci_values("external")):
        assert "nvidia.com/gpu" not in yaml.safe_dump(render(tmp_path, values).objects)
    rendered = render(tmp_path, ci_values("gpu"))
    workloads = deployments(rendered)
    embedding = workloads["embedding"]
    c = container(embedding)
    pod = embedding["spec"]["template"]["spec"]
    assert c["resources"]["limits"] == {"memory": "64Gi", "nvidia.com/gpu": 1}
    assert c["image"] == "registry.example.com/ml/shoal:0.1.0-gpu"
    assert env_of(embedding)["SHOAL_EMBEDDING_DEVICE"] == "gpu"
    assert pod["nodeSelector"] == {
        "node.kubernetes.io/instance-type": "gpu-h200",
        "nvidia.com/gpu.present": "true",
    }
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    for name, deployment in workloads.items():
        if name != "embedding":
            assert "nvidia.com/gpu" not in yaml.safe_dump(deployment)
            assert container(deployment)["image"] == "registry.example.com/ml/shoal:0.1.0"
    assert env_of(deployments(render(tmp_path))["embedding"])["SHOAL_EMBEDDING_DEVICE"] == "auto"


def test_autoscaling_replaces_fixed_replicas_and_budgets_cover_each_service(tmp_path: Path) -> None:
    rendered = render(tmp_path, ci_values("full"))
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in rendered.of_kind("HorizontalPodAutoscaler")}
    assert set(hpas) == {"shoal-prod-ingest", "shoal-prod-versioning", "shoal-prod-asset"}
    for name, deployment in deployments(rendered).items():
        target = deployment["metadata"]["name"]
        if target in hpas:
            assert "replicas" not in deployment["spec"]
        else:
            assert deployment["spec"]["replicas"] == (2 if name == "metrics" else 1)
        pdb = rendered.named("PodDisruptionBudget", target)
        assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    ingest = hpas["shoal-prod-ingest"]["spec"]
    assert (ingest["minReplicas"], ingest["maxReplicas"]) == (3, 20)
    assert [m["resource"]["name"] for m in ingest["metrics"]] == ["cpu", "memory"]
    assert rendered.named("PodDisruptionBudget", "shoal-prod-ingest")["spec"]["maxUnavailable"] == "25%"
    ingest_env = env_of(deployments(rendered)["ingest"])
    assert ingest_env["SHOAL_PROCESSES"] == "4"
    assert ingest_env["SHOAL_INGEST_MAX_QUEUE_DEPTH"] == "5000"
    assert rendered.of_kind("ConfigMap")[0]["data"]["SHOAL_INGEST_PARTITIONS"] == "8"
    minimal = render(tmp_path, ci_values("minimal"))
    assert not minimal.of_kind("PodDisruptionBudget")
    assert set(deployments(minimal)) == {"ingest", "versioning"}


def test_per_service_env_overrides_the_chart_defaults_without_duplicates(tmp_path: Path) -> None:
    values = {"services": {"embedding": {"env": {"SHOAL_EMBEDDING_DEVICE": "cpu"}}}}
    env = env_of(deployments(render(tmp_path, values))["embedding"])
    assert env["SHOAL_EMBEDDING_DEVICE"] == "cpu"


def test_the_embedding_service_calls_the_versioning_service_by_its_service_name(tmp_path: Path) -> None:
    for values in ({}, ci_values("full")):
        rendered = render(tmp_path, values)
        workloads = deployments(rendered)
        host, port = env_of(workloads["embedding"])["SHOAL_VERSIONING_ADDRESS"].rsplit(":", 1)
        service = rendered.named("Service", host)
        assert service["spec"]["selector"] == workloads["versioning"]["spec"]["selector"]["matchLabels"]
        assert {"name": "grpc", "port": int(port)}.items() <= service["spec"]["ports"][0].items()
        assert all("SHOAL_VERSIONING_ADDRESS" not in env_of(d) for n, d in workloads.items() if n != "embedding")


def test_network_policies_admit_exactly_the_suites_pods(tmp_path: Path) -> None:
    rendered = render(tmp_path, ci_values("full"))
    pods = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments(rendered).items()}
    foreign = {"app.kubernetes.io/name": "shoal", "app.kubernetes.io/instance": "other-release"}
    for component, port in (("redis", 6379), ("minio", 9000)):
        policy = rendered.named("NetworkPolicy", f"shoal-prod-{component}")
        target = rendered.named("StatefulSet", f"shoal-prod-{component}")
        assert policy["spec"]["podSelector"]["matchLabels"] == target["spec"]["selector"]["matchLabels"]
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        suite_peer = rule["from"][0]["podSelector"]

        def admits(labels: dict[str, str], peer: dict[str, Any] = suite_peer) -> bool:
            return all(labels.get(e["key"]) in e["values"] for e in peer["matchExpressions"])

        assert all(admits(labels) for labels in pods.values())
        assert not admits({**foreign, "app.kubernetes.io/component": "ingest"})
        assert not admits(target["spec"]["template"]["metadata"]["labels"])
        extra = rule["from"][1:]
        assert extra == (
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
            if component == "minio"
            else []
        )


def test_ingress_routes_each_grpc_service_path_to_its_service(tmp_path: Path) -> None:
    rendered = render(tmp_path, ci_values("full"))
    ingress = rendered.named("Ingress", "shoal-prod")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert ingress["spec"]["tls"] == [{"hosts": ["shoal.example.com"], "secretName": "shoal-tls"}]
    (rule,) = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    for service, component in (*((v, k) for k, v in HEALTH_NAMES.items()), ("shoal.v1.OperationsService", "metrics")):
        backend = routes[f"/{service}/"]
        assert backend == {"name": f"shoal-prod-{component}", "port": {"name": "grpc"}}
        assert "grpc" in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
    assert routes["/grpc.health.v1.Health/"]["name"] == "shoal-prod-ingest"
    # A disabled service gets no route.
    minimal = render(tmp_path, {**ci_values("minimal"), "ingress": {"enabled": True}})
    paths = [p["path"] for p in minimal.named("Ingress", "shoal")["spec"]["rules"][0]["http"]["paths"]]
    assert paths == ["/shoal.v1.IngestService/", "/shoal.v1.VersioningService/", "/grpc.health.v1.Health/"]
    # Presigned URLs are signed for the MinIO ingress host.
    assert rendered.of_kind("ConfigMap")[0]["data"]["SHOAL_S3_PUBLIC_ENDPOINT"] == "https://objects.example.com"


def test_service_monitors_need_the_crd_or_an_explicit_override(tmp_path: Path) -> None:
    # Offline, the cluster reports no monitoring.coreos.com/v1 API: enabled alone creates nothing, and says so.
    gated = render(tmp_path, {"serviceMonitor": {"enabled": True}})
    assert not gated.of_kind("ServiceMonitor")
    assert "no monitoring.coreos.com/v1 ServiceMonitor API" in gated.notes
    rendered = render(tmp_path, ci_values("full"))
    monitors = rendered.of_kind("ServiceMonitor")
    assert len(monitors) == len(SERVICES)
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
        matched = [
            s
            for s in services.values()
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert len(matched) == 1
        assert "metrics" in {p["name"] for p in matched[0]["spec"]["ports"]}


@pytest.mark.parametrize(
    ("values", "finding"),
    [
        ({"services": {"ingest": {"replicas": "two"}}}, "/services/ingest/replicas"),
        ({"services": {"ingest": {"replica": 2}}}, "replica"),
        ({"servics": {}}, "servics"),
        ({"services": {"embedding": {"gpu": {"enabled": "yes"}}}}, "/services/embedding/gpu/enabled"),
        ({"services": {"asset": {"env": {"SHOAL_GRPC_PORT": "1"}}}}, "SHOAL_GRPC_PORT"),
        ({"services": {"asset": {"env": {"PATH": "/bin"}}}}, "PATH"),
        ({"auth": {"adminApiKey": "short"}}, "/auth/adminApiKey"),
        ({"redis": {"url": "http://redis:6379"}}, "/redis/url"),
        ({"logLevel": "LOUD"}, "/logLevel"),
        ({"services": {"ingest": {"resources": {"requests": {"cpu": "lots"}}}}}, "/services/ingest/resources"),
    ],
)
def test_bad_values_are_rejected_by_the_schema(values: dict[str, Any], finding: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    with pytest.raises(ChartCheckError) as info:
        chartcheck.check(bad, tmp_path / "out")
    assert finding in str(info.value)
    # Rendering alone (what `helm install` does) refuses them too.
    with pytest.raises(ChartCheckError, match=r"values\.schema\.json"):
        render(tmp_path, values)
    assert chartcheck.main([str(bad), "--out", str(tmp_path / "out")]) == 1


def test_missing_required_settings_fail_the_render_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(ChartCheckError, match=r"redis.url \(or redis.existingSecret\) is required"):
        render(tmp_path, {"redis": {"enabled": False}})
    with pytest.raises(ChartCheckError, match=r"objectStore\.endpoint is required"):
        render(tmp_path, {"minio": {"enabled": False}, "objectStore": {"existingSecret": "s3"}})


def test_values_the_kubernetes_schema_rejects_fail_strict_validation(tmp_path: Path) -> None:
    """The values schema leaves affinity free-form; the Kubernetes schema, strictly, does not."""
    bad = tmp_path / "affinity.yaml"
    bad.write_text(yaml.safe_dump({"services": {"ingest": {"affinity": {"nodeAfinity": {}}}}}))
    with pytest.raises(
        ChartCheckError, match=r"(?s)kubernetes-validate --strict failed:.*'nodeAfinity' was unexpected"
    ):
        chartcheck.check(bad, tmp_path / "out")


@pytest.mark.parametrize(
    ("template", "old", "new", "finding"),
    [
        # A Go template syntax error: the linter.
        ("_workload.tpl", "{{- $svc := .svc }}", "{{- $svc := .svc }", "helm lint --strict failed"),
        # A misspelt Kubernetes field: only the strict validator sees it.
        ("_workload.tpl", "  revisionHistoryLimit: 5", "  revisionHistoryLimits: 5", "'revisionHistoryLimits'"),
        # Wrong indentation: the render is not YAML any more, or not the object it should be.
        ("configmap.yaml", "  {{ $key }}: {{ $value | toString | quote }}", "{{ $key }}: [", "configmap"),
    ],
)
def test_a_broken_template_fails_the_check(template: str, old: str, new: str, finding: str, tmp_path: Path) -> None:
    chart = tmp_path / "shoal"
    shutil.copytree(CHART, chart)
    path = chart / "templates" / template
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(ChartCheckError, match=re.escape(finding)):
        chartcheck.check(CHART / "ci" / "default.yaml", tmp_path / "out", chart)
    assert chartcheck.main(["--chart", str(chart), "--out", str(tmp_path / "out")]) == 1


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_the_console_is_hardened_probed_and_wired_to_the_services_only(values_file: Path, tmp_path: Path) -> None:
    rendered = render(tmp_path, chartcheck.load_values(values_file))
    deployment = console_deployment(rendered)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    assert c["command"] == ["shoal-console"]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    sc = c["securityContext"]
    assert (sc["runAsNonRoot"], sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"]) == (True, True, False)
    assert pod["automountServiceAccountToken"] is False
    # It holds no credentials: every variable is a literal, and it reaches each service through its Service.
    env = env_of(deployment)
    assert all(not isinstance(v, tuple) for v in env.values())
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    for name, service_deployment in deployments(rendered).items():
        host, port = env[f"SHOAL_{name.upper()}_ADDRESS"].rsplit(":", 1)
        assert host == service_deployment["metadata"]["name"]
        assert host in services
        assert int(port) == DEFAULT_GRPC_PORTS[name]
    service = services[deployment["metadata"]["name"]]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, "http")]


def test_the_console_has_its_own_ingress_host(tmp_path: Path) -> None:
    rendered = render(tmp_path, ci_values("full"))
    (ingress,) = [i for i in rendered.of_kind("Ingress") if i["metadata"]["name"].endswith("-console")]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "console.datasets.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/"
    assert path["backend"]["service"]["port"] == {"name": "http"}
    assert "backend-protocol" not in str(ingress["metadata"].get("annotations", {}))
    grpc_hosts = {r["host"] for i in rendered.of_kind("Ingress") if i is not ingress for r in i["spec"]["rules"]}
    assert rule["host"] not in grpc_hosts
    assert console_deployment(render(tmp_path, {"console": {"enabled": False}})) is None


def test_chart_ports_match_the_services_defaults(tmp_path: Path) -> None:
    rendered = render(tmp_path)
    for name, deployment in deployments(rendered).items():
        ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
        assert ports == {"grpc": DEFAULT_GRPC_PORTS[name], "metrics": DEFAULT_METRICS_PORTS[name]}
    assert set(deployments(rendered)) == set(SERVICES)


# Values documented as one object rather than key by key.
WHOLE = {"resources", "annotations", "nodeSelector", "podSecurityContext", "securityContext"}


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in WHOLE:
            out += _leaves(value, path + ".")
        else:
            out.append(path)
    return out


def test_chart_readme_describes_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    leaves = set(_leaves(values))
    # Every service block has the same keys: the README documents them once as services.<name>.*.
    generic = {re.sub(r"^services\.[a-z]+\.(?!gpu\.)", "services.<name>.", leaf) for leaf in leaves}
    missing = sorted(leaf for leaf in generic if leaf not in documented)
    assert not missing, f"values not in helm/shoal/README.md: {missing}"
    stale = sorted(key for key in documented if key not in generic)
    assert not stale, f"README documents values the chart does not have: {stale}"


def test_every_setting_the_chart_sets_is_documented(tmp_path: Path) -> None:
    documented = (Path(chartcheck.ROOT) / "docs" / "configuration.md").read_text()
    rendered = render(tmp_path, ci_values("full"))
    names = set(rendered.of_kind("ConfigMap")[0]["data"])
    for deployment in deployments(rendered).values():
        names |= set(env_of(deployment))
    for name in sorted(names):
        assert f"`{name}`" in documented, f"{name} is missing from docs/configuration.md"


def test_compose_file_wires_the_same_ports_and_persistence() -> None:
    compose = yaml.safe_load((Path(chartcheck.ROOT) / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    for name in SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert svc["command"] == [f"shoal-{name}"]
        assert env["SHOAL_GRPC_PORT"] == str(DEFAULT_GRPC_PORTS[name])
        assert env["SHOAL_METRICS_PORT"] == str(DEFAULT_METRICS_PORTS[name])
        assert f"{DEFAULT_GRPC_PORTS[name]}:{DEFAULT_GRPC_PORTS[name]}" in svc["ports"]
        assert env["SHOAL_REDIS_URL"] == "redis://redis:6379/0"
        assert env["SHOAL_S3_ENDPOINT"] == "http://minio:9000"
        assert svc["read_only"] is True
        assert set(svc["depends_on"]) == {"redis", "minio"}

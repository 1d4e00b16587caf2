"""`shoal demo`: start the suite on embedded defaults, show it working, stop it. Grows with every capability."""

from __future__ import annotations

import argparse
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shoal.kit.settings import SERVICES
from shoal.kit.status import unpack
from shoal.runner.suite import ADMIN_KEY_FILE, SuiteConfig
from shoal.v1 import versioning_service_pb2, versioning_service_pb2_grpc

Command = Callable[[argparse.Namespace], int]


def _reflected_services(target: str) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        return sorted(s.name for reply in replies for s in reply.list_services_response.service)


def _handled_total(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    lines = [
        line
        for line in body.splitlines()
        if line.startswith("grpc_server_handled_total{") and not line.endswith(" 0.0")
    ]
    return "\n".join(lines) or "(no calls yet)"


def run_demo(args: argparse.Namespace, up: Command, down: Command) -> int:
    own_state = args.state_dir is None
    if own_state:
        args.state_dir = tempfile.mkdtemp(prefix="shoal-demo-")
    print(f"== shoal up (state in {args.state_dir})")
    code = up(args)
    if code != 0:
        return code
    try:
        config = SuiteConfig.load(Path(args.state_dir).resolve())
        key = os.environ.get("SHOAL_ADMIN_API_KEY") or (config.state / ADMIN_KEY_FILE).read_text().strip()
        print("\n== every service describes itself through reflection")
        for name in SERVICES:
            target = f"{config.host}:{config.services[name].grpc_port}"
            shoal_services = [s for s in _reflected_services(target) if s.startswith("shoal.")]
            print(f"{name:<12}{', '.join(shoal_services)}")
        target = f"{config.host}:{config.services['versioning'].grpc_port}"
        with grpc.insecure_channel(target) as channel:
            stub = versioning_service_pb2_grpc.VersioningServiceStub(channel)
            print("\n== a call without an API key")
            try:
                stub.ListProjects(versioning_service_pb2.ListProjectsRequest(), timeout=5)
            except grpc.RpcError as err:
                info = unpack(err)
                print(f"{info.code.name}: {info.message} (reason {info.reason})")
            print("== the same call with the admin key")
            try:
                stub.ListProjects(
                    versioning_service_pb2.ListProjectsRequest(), metadata=(("x-api-key", key),), timeout=5
                )
            except grpc.RpcError as err:
                info = unpack(err)
                print(f"{info.code.name}: {info.message} (reason {info.reason})")
        print("\n== request metrics of the versioning service")
        metrics_url = f"http://{config.host}:{config.services['versioning'].metrics_port}/metrics"
        print(_handled_total(metrics_url))
    finally:
        print("\n== shoal down")
        down_code = down(args)
    return down_code

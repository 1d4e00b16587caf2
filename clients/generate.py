"""Generate the clients from protos/ with buf.gen.yaml, running only the plugins installed here.

The TypeScript plugin (ts-proto) comes from clients/node's lockfile and is always required. The Go plugins
(protoc-gen-go, protoc-gen-go-grpc) need a Go toolchain to install; where they are not on PATH the Go client is
skipped with a note instead of failing, so `make clients` works on machines without Go.

    python clients/generate.py path/to/buf
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "buf.gen.yaml"


def installed(plugin: dict[str, object]) -> bool:
    local = plugin["local"]
    command = str(local[0] if isinstance(local, list) else local)
    if "/" in command:
        return (ROOT / command).is_file()
    return shutil.which(command) is not None


def main(buf: str) -> int:
    template = yaml.safe_load(TEMPLATE.read_text())
    plugins = template["plugins"]
    present = [p for p in plugins if installed(p)]
    missing = [str(p["local"]) for p in plugins if p not in present]
    if any(str(p["local"]).endswith("protoc-gen-ts_proto") for p in plugins if p not in present):
        print("clients/node's packages are missing: run `make setup` (npm ci in clients/node)", file=sys.stderr)
        return 1
    for name in missing:
        print(f"skipped {name}: not on PATH (see docs/clients.md)")
    template["plugins"] = present
    command = [buf, "generate", "--template", json.dumps(template)]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".tools/node_modules/.bin/buf")))

"""`pip install shoal` is the SDK and the CLI; the services' heavy dependencies come with `shoal[server]`. Checked in a
fresh interpreter where every server-only package fails to import: the SDK, its builders and the client commands
still load, and `shoal up` says what to install instead of crashing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from shoal.cli import SERVER_MODULES

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {set(SERVER_MODULES)!r}:
                raise ImportError(f"{{name}} is a server-only package")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_sdk_and_client_commands_need_no_server_package() -> None:
    result = _run(
        """
        import shoal
        from shoal.sdk import coco, folders, groundtruth, serialized
        from shoal import cli, datacli
        frame = shoal.LabeledFrame(frame_id="f1")
        frame.add_image(sensor_id="cam", image_url="s3://b/1.jpg", width=4, height=3)
        frame.add_label_2d_bbox(sensor_id="cam", label_id="l1", classification="car", top=0, left=0, width=1, height=1)
        assert frame.to_proto().frame_id == "f1"
        assert cli.parser().parse_args(["list", "projects"]).what == "projects"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_blocker_really_blocks() -> None:
    result = _run("import lance")
    assert result.returncode != 0
    assert "server-only package" in result.stderr


def test_shoal_up_without_the_server_packages_says_what_to_install() -> None:
    result = _run(
        """
        from shoal import cli
        raise SystemExit(cli.main(["up", "--state-dir", "/nonexistent/shoal-state"]))
        """
    )
    assert result.returncode == 1
    assert "pip install 'shoal[server]'" in result.stderr
    assert "Traceback" not in result.stderr

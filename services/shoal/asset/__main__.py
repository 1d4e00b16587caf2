"""`shoal-asset`: settings → logging → serve until SIGTERM."""

from shoal.asset.server import build
from shoal.kit.bootstrap import run_service


def main() -> None:
    run_service("asset", build)


if __name__ == "__main__":
    main()

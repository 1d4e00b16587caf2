"""`shoal-metrics`: settings → logging → serve until SIGTERM."""

from shoal.metrics.server import build
from shoal.kit.bootstrap import run_service


def main() -> None:
    run_service("metrics", build)


if __name__ == "__main__":
    main()

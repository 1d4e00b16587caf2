"""`shoal-metrics`: settings → logging → serve until SIGTERM."""

from shoal.kit.bootstrap import run_service
from shoal.metrics.server import build


def main() -> None:
    run_service("metrics", build)


if __name__ == "__main__":
    main()

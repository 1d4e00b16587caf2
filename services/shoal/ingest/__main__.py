"""`shoal-ingest`: settings → logging → serve until SIGTERM."""

from shoal.ingest.server import build
from shoal.kit.bootstrap import run_service


def main() -> None:
    run_service("ingest", build)


if __name__ == "__main__":
    main()

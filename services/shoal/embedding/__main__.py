"""`shoal-embedding`: settings → logging → serve until SIGTERM."""

from shoal.embedding.server import build
from shoal.kit.bootstrap import run_service


def main() -> None:
    run_service("embedding", build)


if __name__ == "__main__":
    main()

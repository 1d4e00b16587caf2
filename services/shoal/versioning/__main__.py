"""`shoal-versioning`: settings → logging → serve until SIGTERM."""

from shoal.kit.bootstrap import run_service
from shoal.versioning.server import build


def main() -> None:
    run_service("versioning", build)


if __name__ == "__main__":
    main()

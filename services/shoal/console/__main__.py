"""`shoal-console`: settings → logging → serve the console until SIGTERM."""

from __future__ import annotations

import uvicorn

from shoal.console.app import ConsoleSettings, build_app
from shoal.kit import logs


def main() -> None:
    settings = ConsoleSettings.from_env()
    logs.configure("console", settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # requests are logged by the app, without headers or bodies
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()

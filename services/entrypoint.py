"""Container entry point: run the service named by `TRIAGEFLOW_SERVICE`, or the CLI."""

from __future__ import annotations

import runpy

from pydantic_settings import BaseSettings, SettingsConfigDict


class ImageSettings(BaseSettings):
    """Which program this image runs (env `TRIAGEFLOW_SERVICE`)."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_", extra="ignore")

    service: str = "cli"


def main() -> None:
    """Run the configured service, or `triageflow` with the container's arguments."""
    service = ImageSettings().service
    if service == "cli":
        from services.cli.main import main as cli

        cli()
        return
    runpy.run_module(f"services.{service}", run_name="__main__")


if __name__ == "__main__":
    main()

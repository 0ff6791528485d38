"""`python -m vigil_registry` and `vigil-registry`: run the registry service until SIGTERM."""

from __future__ import annotations

from vigil_kit.service import service_main
from vigil_registry import app
from vigil_registry.config import Settings

SUMMARY = "Vigil registry: the units, sites and devices of the city's public safety video system."


def main() -> None:
    service_main(Settings, app.run, prog="vigil-registry", summary=SUMMARY)


if __name__ == "__main__":
    main()

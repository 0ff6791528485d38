"""`python -m vigil_ingest` and `vigil-ingest`: run the ingest service until SIGTERM."""

from __future__ import annotations

from vigil_ingest import app
from vigil_ingest.config import Settings
from vigil_kit.service import service_main

SUMMARY = "Vigil ingest: accepts signed video segments from cameras and gateways into object storage."


def main() -> None:
    service_main(Settings, app.run, prog="vigil-ingest", summary=SUMMARY)


if __name__ == "__main__":
    main()

"""`python -m vigil_archive` and `vigil-archive`: run the archive service until SIGTERM."""

from __future__ import annotations

from vigil_archive import app
from vigil_archive.config import Settings
from vigil_kit.service import service_main

SUMMARY = "Vigil archive: indexes stored segments, holds evidence, serves playback and exports."


def main() -> None:
    service_main(Settings, app.run, prog="vigil-archive", summary=SUMMARY)


if __name__ == "__main__":
    main()

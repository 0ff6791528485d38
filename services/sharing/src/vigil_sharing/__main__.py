"""`python -m vigil_sharing` and `vigil-sharing`: run the sharing service until SIGTERM."""

from __future__ import annotations

from vigil_kit.service import service_main
from vigil_sharing import app
from vigil_sharing.config import Settings

SUMMARY = "Vigil sharing: clearances, access requests, grants and partner subscriptions."


def main() -> None:
    service_main(Settings, app.run, prog="vigil-sharing", summary=SUMMARY)


if __name__ == "__main__":
    main()

"""`python -m vigil_audit` and `vigil-audit`: run the audit service until SIGTERM."""

from __future__ import annotations

from vigil_audit import app
from vigil_audit.config import Settings
from vigil_kit.service import service_main

SUMMARY = "Vigil audit: the tamper-evident audit log every service's audit records land in."


def main() -> None:
    service_main(Settings, app.run, prog="vigil-audit", summary=SUMMARY)


if __name__ == "__main__":
    main()

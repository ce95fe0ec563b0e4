"""Every user error of the CLI is one line `aibroker: error[<code>]: ...` and exit status 2."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from broker.catalog import load_catalog
from broker.cli.main import build_parser, main
from broker.cli.usage import readable_bucket
from broker.localstack import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "aibroker.yaml"
ERROR_LINE = re.compile(r"^aibroker: error\[(?P<code>[a-z_]+)\]: (?P<message>\S.*)$")


@pytest.fixture(autouse=True)
def no_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    """`aibroker worker` replaces its process with Celery: never the test runner's."""
    def refuse(*args: object) -> None:
        raise AssertionError(f"the CLI would have replaced this process: {args}")

    monkeypatch.setattr(os, "execv", refuse)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example catalog, a Redis URL where nothing listens, and a tenant key."""
    monkeypatch.setenv("AIBROKER_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("AIBROKER_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("AIBROKER_API_KEY", "sk-example-support")


def user_error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    """Run the CLI in-process; assert one error line and status 2; return (code, message)."""
    status = main(list(argv))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    match = ERROR_LINE.match(lines[0])
    assert match is not None, err
    return match["code"], match["message"]


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("argv", [
    ("submit", "--model", "llama-3.1-8b-instruct", "--prompt", "hi"),
    ("status",),
    ("status", "--format", "json"),
    ("usage",),
    ("audit",),
])
def test_redis_unreachable_is_one_line(capsys: pytest.CaptureFixture[str],
                                       argv: tuple[str, ...]) -> None:
    code, message = user_error(capsys, *argv)
    assert code == "redis_unreachable"
    assert "AIBROKER_REDIS_URL" in message


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("argv", [
    ("workers", "plan", "--hosts", "0"),
    ("workers", "plan", "--hosts", "-1"),
    ("workers", "plan", "--hosts", "two"),
    ("worker", "--stage", "model", "--deployment", "llama-inhouse", "--hosts", "0"),
    ("worker", "--stage", "gateway", "--concurrency", "0"),
    ("worker", "--stage", "model"),
    ("worker", "--stage", "model", "--deployment", "nowhere"),
    ("submit", "--timeout", "-1", "--model", "m", "--prompt", "hi"),
    ("submit", "--timeout", "0", "--model", "m", "--prompt", "hi"),
    ("submit", "--timeout", "nan", "--model", "m", "--prompt", "hi"),
    ("batch", "wait", "batch_x", "--timeout", "-5"),
    ("audit", "--limit", "0"),
    ("usage", "--by", "weekday"),
    ("status", "--format", "xml"),
    (),
])
def test_bad_arguments_are_refused_in_one_line(capsys: pytest.CaptureFixture[str],
                                               argv: tuple[str, ...]) -> None:
    code, _ = user_error(capsys, *argv)
    assert code == "invalid_argument"


@pytest.mark.usefixtures("cli_env")
def test_hosts_message_says_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    _, message = user_error(capsys, "workers", "plan", "--hosts", "0")
    assert "--hosts" in message
    assert "at least 1" in message


BAD_LINES: dict[str, bytes] = {
    "array": b"[1, 2, 3]",
    "number": b"42",
    "string": b'"just text"',
    "null": b"null",
    "binary": b"\xff\xfe\x00\x81garbage\xc3",
    "lone surrogate": b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "5000 digits": b'{"model": "m", "max_tokens": ' + b"7" * 5000 + b"}",
    "not json": b"{model: m}",
}


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_bad_lines_of_a_jobs_file_are_one_line(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path, name: str) -> None:
    good = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(good + b"\n\n" + BAD_LINES[name] + b"\n" + good + b"\n")
    code, message = user_error(capsys, "submit", "--file", str(path))
    assert code == "invalid_request"
    assert message.startswith(f"{path}:3: ")


@pytest.mark.usefixtures("cli_env")
def test_a_missing_file_and_a_directory_are_one_line(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    missing = user_error(capsys, "submit", "--file", str(tmp_path / "missing.jsonl"))
    directory = user_error(capsys, "submit", "--file", str(tmp_path))
    assert missing == ("invalid_argument",
                       f"{tmp_path / 'missing.jsonl'}: No such file or directory")
    assert directory == ("invalid_argument", f"{tmp_path}: Is a directory")


def test_a_missing_catalog_names_the_variable_and_the_example(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIBROKER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    code, message = user_error(capsys, "status")
    assert code == "config_invalid"
    assert "AIBROKER_CONFIG" in message
    assert "examples/aibroker.yaml" in message


def test_an_invalid_catalog_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["broker"]["batch_size"] = 0
    data["broker"]["no_such_setting"] = 1
    path = tmp_path / "aibroker.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AIBROKER_CONFIG", str(path))
    code, message = user_error(capsys, "workers", "plan")
    assert code == "config_invalid"
    assert "broker.batch_size" in message
    assert "broker.no_such_setting" in message


def _into_closed_pipe(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout a pipe nobody reads any more (what `| head -c 10` leaves)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "broker.cli.main", *argv], env=env,
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120, check=False)
    finally:
        os.close(write_end)


def test_a_closed_pipe_ends_quietly() -> None:
    env = {**os.environ, "AIBROKER_CONFIG": str(EXAMPLE)}
    done = _into_closed_pipe("workers", "plan", "--hosts", "3", env=env)
    assert done.stderr == ""
    assert done.returncode == 141


def test_help_describes_the_tool() -> None:
    text = build_parser().format_help()
    assert "Entry point" not in text
    assert "gateway" in text
    assert "AIBROKER_CONFIG" in text
    assert "examples/aibroker.yaml" in text


def test_workers_plan_commands_carry_the_catalog_they_need(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIBROKER_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("AIBROKER_REDIS_URL", "redis://10.0.0.5:6379/2")
    assert main(["workers", "plan", "--hosts", "2"]) == 0
    commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines()
                if line and not line.startswith("#")]
    assert len(commands) == 1 + len(load_catalog(EXAMPLE).deployments)
    for words in commands:
        assert words[:2] == [f"AIBROKER_CONFIG={EXAMPLE}",
                             "AIBROKER_REDIS_URL=redis://10.0.0.5:6379/2"]
        assert words[2:5] == ["celery", "-A", "broker.app"]


def sample_commands() -> list[list[str]]:
    """The shell commands the example catalog's comments give, as words."""
    return [shlex.split(line.removeprefix("#").strip())
            for line in EXAMPLE.read_text().splitlines()
            if re.match(r"^#\s+AIBROKER_\w+=\S+ .*aibroker ", line)]


def test_the_example_sample_commands_are_found() -> None:
    found = [words[words.index("aibroker") + 1] for words in sample_commands()]
    assert found == ["workers", "submit"]


def test_the_example_workers_plan_runs_as_written(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    words = next(w for w in sample_commands() if "workers" in w)
    at = words.index("aibroker")
    monkeypatch.chdir(ROOT)
    for assignment in words[:at]:
        monkeypatch.setenv(*assignment.split("=", 1))
    assert main(words[at + 1:]) == 0
    assert "celery -A broker.app worker" in capsys.readouterr().out


def test_the_example_submit_is_allowed_by_the_example_tenants() -> None:
    words = next(w for w in sample_commands() if "submit" in w)
    at = words.index("aibroker")
    env = dict(assignment.split("=", 1) for assignment in words[:at])
    args = build_parser().parse_args(words[at + 1:])
    catalog = load_catalog(ROOT / env["AIBROKER_CONFIG"])
    found = catalog.find_tenant(hashlib.sha256(env["AIBROKER_API_KEY"].encode()).hexdigest())
    assert found is not None
    _, tenant = found
    assert args.model in catalog.models
    assert tenant.allows(args.model)
    assert "chat" in tenant.allowed_kinds
    # The lane rule of policies/guards/authorization.py: a batch-only tenant's interactive
    # jobs end lane_not_allowed.
    assert args.priority == "batch" or tenant.max_lane == "interactive"


@pytest.mark.parametrize(("dimension", "bucket", "shown"), [
    ("hour", "2026120205", "2026-12-02T05:00Z"),
    ("day", "20261202", "2026-12-02"),
    ("tenant", "2026120205", "2026120205"),
])
def test_usage_buckets_read_as_iso(dimension: str, bucket: str, shown: str) -> None:
    assert readable_bucket(dimension, bucket) == shown


def test_the_example_keys_are_the_ones_the_catalog_hashes() -> None:
    text = EXAMPLE.read_text()
    catalog = load_catalog(EXAMPLE)
    for name, key in re.findall(r"^#\s+(\w+):\s+(sk-example-\w+)$", text, re.MULTILINE):
        found = catalog.find_tenant(hashlib.sha256(key.encode()).hexdigest())
        assert found is not None
        assert found[0] == name

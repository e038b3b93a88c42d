"""scripts/deploy.sh over real SSH (OpenSSH server on 127.0.0.1) to a --no-systemd host in a temp prefix:
install the wheel, run the deployed reader, deploy again, roll back a broken release, two hosts at once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, needs, requires
from tests.sshd import SSHD, SshServer, make_client_key

pytestmark = pytest.mark.deploy

DEPLOY = ROOT / "scripts" / "deploy.sh"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    needs(
        not Path(SSHD).exists()
        and "the OpenSSH server (apt-get install openssh-server; scripts/test.sh does)"
    )
    return make_client_key(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def server(keys, tmp_path_factory):
    with SshServer(tmp_path_factory.mktemp("sshd"), keys) as s:
        yield s


def deploy_command(project: Path, keys: Path, known: Path, prefix: Path, etc: Path, *targets, extra=()):
    script = project / "scripts" / "deploy.sh"
    # The wheel is built with this interpreter (it has pip and setuptools; a bare python3 may not).
    options = ["--no-systemd", "--no-apt", "--python", sys.executable, "--identity", str(keys)]
    options += ["--known-hosts", str(known)]
    return ["bash", str(script), *options, "--prefix", str(prefix), "--etc", str(etc), *extra, *targets]


def deploy(*args, **kwargs):
    command = deploy_command(*args, **kwargs)
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def releases(prefix: Path) -> list[str]:
    return sorted(p.name for p in (prefix / "releases").iterdir())


def current(prefix: Path) -> str:
    return Path((prefix / "current").readlink()).name


def deployed_env() -> dict:
    """This environment without PYTHONPATH, which may name the project folder: the deployed venv must run
    its own installed package, not the sources beside the test."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_deployed(prefix: Path, image: Path) -> dict:
    result = subprocess.run(
        [str(prefix / "current" / "venv" / "bin" / "device-run"), "--source", str(image), "--once", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=deployed_env(),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_deploy_redeploy_and_rollback(server, keys, tmp_path):
    known, prefix, etc = tmp_path / "known_hosts", tmp_path / "opt", tmp_path / "etc"

    first = deploy(ROOT, keys, known, prefix, etc, server.target)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "ok" in first.stdout.splitlines()[-1] and server.target in first.stdout.splitlines()[-1]
    assert len(releases(prefix)) == 1 and current(prefix) == releases(prefix)[0]
    release = prefix / "current"
    # A wheel installed into the release's venv, not a source tree: the model is package data inside it.
    assert list(release.glob("digit_reader-*.whl")) and not (release / "device").exists()
    where = "import device.classify as c; print(c.DEFAULT_MODEL)"
    installed = subprocess.run(
        [str(release / "venv" / "bin" / "python"), "-c", where],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=deployed_env(),
    )
    model = Path(installed.stdout.strip())
    assert model.is_file() and model.resolve().is_relative_to(release.resolve() / "venv")
    assert not list((release / "venv").rglob("__editable__*"))
    assert not (release / "host").exists() and not (release / "models" / "digits.keras").exists()
    assert (etc / "config.toml").read_text() == (ROOT / "systemd" / "config.toml").read_text()
    # It may hold the web token: readable by root and the service's group only.
    assert (etc / "config.toml").stat().st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (etc / "config.toml").group() == "digit-reader"
    reading = run_deployed(prefix, ROOT / "device" / "demo" / "page.jpg")
    assert reading["text"] == (ROOT / "device" / "demo" / "page.txt").read_text().strip()
    pip_list = subprocess.run([str(release / "venv" / "bin" / "pip"), "list"], capture_output=True, text=True)
    assert "tensorflow" not in pip_list.stdout.lower()

    # A deploy that is still running holds the host's lock: a second one stops at once and changes nothing.
    lock = prefix / ".deploy.lock"
    lock.mkdir()
    (lock / "owner").write_text("some-release from another-laptop\n")
    blocked = deploy(ROOT, keys, known, prefix, etc, server.target)
    assert blocked.returncode == 1
    assert "another deploy is running on this host" in blocked.stdout
    assert "held by some-release from another-laptop" in blocked.stdout
    assert len(releases(prefix)) == 1 and lock.exists()
    # A lock left behind by a dead deploy (older than 30 minutes) is taken over, and given back at the end.
    os.utime(lock, (time.time() - 7200, time.time() - 7200))

    # A user's edited config is never overwritten; the new default goes beside it.
    (etc / "config.toml").write_text("[decision]\nmin_confidence = 0.7\n")
    second = deploy(ROOT, keys, known, prefix, etc, server.target)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(releases(prefix)) == 2 and current(prefix) == releases(prefix)[1]
    assert (etc / "config.toml").read_text() == "[decision]\nmin_confidence = 0.7\n"
    assert (etc / "config.toml.new").exists() and "config.toml.new" in second.stdout
    assert "taking over a lock left" in second.stdout and not lock.exists()
    good = current(prefix)

    # A release whose model is broken fails its health check and is rolled back.
    broken = tmp_path / "broken-project"
    shutil.copytree(ROOT, broken, ignore=shutil.ignore_patterns(".venv*", ".git", "__pycache__", "reports"))
    model = broken / "device" / "models" / "digits_int8.tflite"
    model.write_bytes(model.read_bytes()[:1000])
    third = deploy(broken, keys, known, prefix, etc, server.target)
    assert third.returncode == 1
    assert f"health check failed; rolled back to {good}" in third.stdout
    assert current(prefix) == good and releases(prefix) == sorted([releases(prefix)[0], good])
    assert run_deployed(prefix, ROOT / "device" / "demo" / "page.jpg")["text"] == "4096 17"


def can_make_mount_namespaces() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@requires(not can_make_mount_namespaces() and "mount namespaces (root, unshare) for two hosts on one machine")
def test_two_hosts_in_parallel_with_summary(keys, tmp_path):
    known, prefix, etc = tmp_path / "known_hosts", tmp_path / "opt", tmp_path / "etc"

    def own_disk(name):  # each server sees its own prefix and etc, like two Pis
        return {prefix: tmp_path / name / "opt", etc: tmp_path / name / "etc"}

    with (
        SshServer(tmp_path / "a", keys, own_disk("disk-a")) as a,
        SshServer(tmp_path / "b", keys, own_disk("disk-b")) as b,
    ):
        result = deploy(ROOT, keys, known, prefix, etc, a.target, b.target, a.target)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{a.target} given twice, deploying it once" in result.stderr
        table = result.stdout.splitlines()[-3:]
        assert table[0].split() == ["HOST", "RELEASE", "TIME", "RESULT"]
        assert {row.split()[0] for row in table[1:]} == {a.target, b.target}
        assert all(row.split()[-1] == "ok" for row in table[1:])
        for server, disk in ((a, "disk-a"), (b, "disk-b")):
            assert len(releases(tmp_path / disk / "opt")) == 1
            assert (tmp_path / disk / "etc" / "config.toml").exists()
            # Each host runs its own release (the venv's paths are the host's, so ask over SSH).
            ssh = ["ssh", "-i", str(keys), "-o", f"UserKnownHostsFile={known}", "-p", str(server.port)]
            venv = prefix / "current" / "venv"
            demo = f"$({venv}/bin/python -c 'import device.cli as c; print(c.demo_dir())')/page.jpg"
            command = f"{venv}/bin/device-run --source {demo} --once --json"
            reader = subprocess.run(
                [*ssh, f"{server.user}@127.0.0.1", command], capture_output=True, text=True, timeout=120
            )
            assert reader.returncode == 0, reader.stderr
            assert json.loads(reader.stdout)["text"] == "4096 17"
        assert not any(prefix.iterdir()), "the deploys wrote to this machine's folder, not the hosts'"


def test_ctrl_c_leaves_the_host_as_it_was(server, keys, tmp_path):
    prefix, etc = tmp_path / "opt", tmp_path / "etc"
    command = deploy_command(ROOT, keys, tmp_path / "known", prefix, etc, server.target)
    # Its own process group, like a deploy started from a terminal, so the test can press "Ctrl-C".
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "- venv with ai-edge-litert" in line:  # the longest step: pip installs into the new release
            os.killpg(process.pid, signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=600)
    out = "".join(seen) + rest
    assert process.returncode == 1, out
    assert "interrupted; the unfinished release was removed" in out
    assert out.splitlines()[-1].split()[-1] == "removed"  # the summary row still comes
    assert list((prefix / "releases").iterdir()) == [] and not (prefix / "current").exists()
    assert not (prefix / ".deploy.lock").exists()


def test_unreachable_and_bad_auth_are_one_line_each(server, tmp_path):
    from tests.sshd import free_port, make_client_key

    stranger = make_client_key(tmp_path)  # a key the server does not know
    result = deploy(
        ROOT,
        stranger,
        tmp_path / "known",
        tmp_path / "opt",
        tmp_path / "etc",
        server.target,
        f"root@127.0.0.1:{free_port()}",
    )
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if "error:" in line]
    assert len(errors) == 2
    assert any("authentication failed" in e and server.target in e for e in errors)
    assert any("unreachable" in e for e in errors)
    assert not (tmp_path / "opt").exists()


def test_dry_run_prints_steps_and_changes_nothing(server, keys, tmp_path):
    result = deploy(
        ROOT, keys, tmp_path / "known", tmp_path / "opt", tmp_path / "etc", server.target, extra=["--dry-run"]
    )
    assert result.returncode == 0, result.stderr
    for step in ("upload release", "venv with ai-edge-litert", "switch", "health check"):
        assert step in result.stdout
    assert not (tmp_path / "opt").exists() and not (tmp_path / "known").exists()


def test_bad_options():
    result = subprocess.run(
        ["bash", str(DEPLOY), "--prefix", "relative", "pi@host"], capture_output=True, text=True
    )
    assert (
        result.returncode == 2 and "deploy.sh: --prefix relative: must be an absolute path" in result.stderr
    )
    assert subprocess.run(["bash", str(DEPLOY)], capture_output=True, text=True).returncode == 2


@pytest.mark.parametrize("target, sudo", [("pi@pi.invalid", True), ("root@pi.invalid", False)])
def test_dry_run_needs_no_server_and_claims_nothing_it_did_not_observe(tmp_path, target, sudo):
    """No sshd, a host that cannot resolve: a dry run says what it would check and run, never a result."""
    result = subprocess.run(
        ["bash", str(DEPLOY), "--dry-run", "--prefix", str(tmp_path / "opt"), "--etc", str(tmp_path / "etc"),
         target],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"would connect (ssh -p 22 {target} sh -s) and check:" in out
    assert "bookworm aarch64" not in out and "python 3.11" not in out  # no host facts it never saw
    assert "is current on" not in out
    assert f"dry run: nothing was run on {target}" in out
    steps = [line.split("--- ", 1)[1] for line in out.splitlines() if "] --- " in line]
    remote_steps = [s for s in steps if not s.startswith("would connect")]
    assert len(remote_steps) >= 8
    for step in remote_steps:  # every step shows the exact ssh command, with sudo where it would use it
        assert step.endswith(f"(ssh -p 22 {target} {'sudo -n ' if sudo else ''}bash -s)"), step
    assert not (tmp_path / "opt").exists() and not (tmp_path / "etc").exists()

"""A real OpenSSH server on 127.0.0.1 for deploy tests: throwaway host and client keys, a free port."""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshServer:
    """``with SshServer(tmp) as server: server.target`` -> ``user@127.0.0.1:port``, key in ``server.key``.

    ``own_dirs={path: backing}`` makes this server a separate machine for those paths: sshd runs in its own
    mount namespace where ``path`` is ``backing`` (bind mount), so two servers on this one machine do not
    share the folders a deploy writes. That needs root.
    """

    def __init__(self, folder: Path, client_key: Path, own_dirs: dict[Path, Path] | None = None):
        self.folder = folder
        self.key = client_key
        self.own_dirs = own_dirs or {}
        self.port = free_port()
        self.user = getpass.getuser()
        self.process = None

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def __enter__(self) -> SshServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        host_key = self.folder / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        authorized = self.folder / "authorized_keys"
        authorized.write_text(Path(f"{self.key}.pub").read_text())
        authorized.chmod(0o600)
        config = self.folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {authorized}\nPidFile {self.folder / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
            "MaxStartups 50\nMaxSessions 50\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        log = self.folder / "sshd.log"
        command = [SSHD, "-D", "-f", str(config), "-E", str(log)]
        if self.own_dirs:
            binds = []
            for path, backing in self.own_dirs.items():
                path.mkdir(parents=True, exist_ok=True)
                backing.mkdir(parents=True, exist_ok=True)
                binds.append(f"mount --bind {shlex.quote(str(backing))} {shlex.quote(str(path))}")
            script = " && ".join([*binds, "exec " + shlex.join(command)])
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        self.process = subprocess.Popen(command)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {log.read_text() if log.exists() else ''}")
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)


def make_client_key(folder: Path) -> Path:
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    os.chmod(key, 0o600)
    return key

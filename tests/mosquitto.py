"""A real Mosquitto broker on 127.0.0.1 for the MQTT tests (own config, free port, optional TLS + passwords),
and a real paho client that records what it receives."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import requires
from tests.sshd import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
OPENSSL = shutil.which("openssl")


def _has_paho() -> bool:
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        return False
    return True


MISSING = (
    None
    if os.access(MOSQUITTO, os.X_OK) and _has_paho()
    else "the mosquitto broker and paho-mqtt (apt install mosquitto python3-paho-mqtt, "
    "or pip install paho-mqtt; scripts/test.sh installs them)"
)
needs_mosquitto = requires(MISSING)
needs_tls_tools = requires(
    (OPENSSL is None or not os.access(MOSQUITTO_PASSWD, os.X_OK))
    and "openssl and mosquitto_passwd (apt install openssl mosquitto)"
)


def make_certs(folder: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (EC keys: fast)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args):
        subprocess.run([OPENSSL, *args], check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=test CA")
    openssl("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    openssl(
        "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return {"ca": ca_crt, "cert": crt, "key": key}


class Broker:
    """``with Broker(folder) as broker: broker.port``; ``stop()`` / ``start()`` keep the port."""

    def __init__(self, folder: Path, port: int | None = None, certs: dict | None = None, users=None):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.certs = certs
        self.users = users or {}
        self.process = None
        self.log = folder / "mosquitto.log"

    def config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"user {getpass.getuser()}",
            "log_dest stderr",
            "log_type all",
        ]
        if self.users:
            passwords = self.folder / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", passwords, user, password], check=True, capture_output=True
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.certs:
            lines += [
                f"cafile {self.certs['ca']}",
                f"certfile {self.certs['cert']}",
                f"keyfile {self.certs['key']}",
            ]
        path = self.folder / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> Broker:
        config = self.config()
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=self._log_file, stderr=self._log_file
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process is not None:
            self._log_file.close()
        self.process = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Collector:
    """A real paho client subscribed to ``topic``; keeps every message (topic, text, retain flag)."""

    def __init__(self, port: int, topic: str = "#", tls_ca: Path | None = None, user=None, password=None):
        from device.outputs.mqtt import make_client

        self.messages: list[tuple[str, str, bool]] = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = make_client(f"test-{free_port()}")
        if user:
            self.client.username_pw_set(user, password)
        if tls_ca:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_connect = lambda client, *args: client.subscribe([(topic, 1), ("sync/#", 1)])
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert self.subscribed.wait(15), "the test client could not subscribe"
        self.sync()

    def sync(self) -> None:
        """Publish a marker and wait for it: the broker handles one client's packets in order, so every
        retained message of the subscription has arrived by then."""
        marker = f"sync/{id(self)}"
        self.client.publish(marker, "x", qos=1)
        assert self.wait_for(lambda c: c.count(marker) > 0, 15), "the marker did not come back"

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))
            self.cond.notify_all()

    def last(self, topic: str) -> str | None:
        with self.cond:
            found = [m for m in self.messages if m[0] == topic]
        return found[-1][1] if found else None

    def count(self, topic: str) -> int:
        with self.cond:
            return sum(m[0] == topic for m in self.messages)

    def retained(self) -> dict[str, str]:
        with self.cond:
            return {t: p for t, p, retain in self.messages if retain}

    def wait_for(self, predicate, timeout: float = 60) -> bool:
        """Wait (up to a generous bound) until ``predicate(self)`` holds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def wait_last(self, topic: str, payload: str, timeout: float = 60) -> bool:
        return self.wait_for(lambda c: c.last(topic) == payload, timeout)

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)

    def json(self, topic: str) -> dict | None:
        text = self.last(topic)
        return json.loads(text) if text else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Configuration: a TOML file -> small frozen dataclasses, validated.

Every value is checked against its type and rule; unknown keys are rejected (a typo must not silently fall
back to a default). Errors name the key, the value and the rule, e.g.
``config.toml: camera.fps = 0: must be between 1 and 240``. Command-line flags are an overlay on the same
keys (:class:`Override`), checked by the same rules and named by the flag: ``--threads 0: must be between
1 and 16``; ``--check-config`` and a start see exactly the same rules.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import tomllib

from device.errors import ConfigError
from device.outputs import OUTPUT_KINDS
from device.safeio import read_regular

PIN_FACTORY_GROUP = "gpiozero_pin_factories"


@functools.cache
def pin_factories() -> tuple[str, ...]:
    """gpiozero's own list of pin factories (the entry points it registers), read without importing gpiozero,
    and only when a pin factory is checked (reading every installed package's metadata costs a Pi start-up
    time); "default" lets gpiozero choose."""
    return ("default", *sorted(ep.name for ep in entry_points(group=PIN_FACTORY_GROUP)))


MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; /dev/zero or a wrong path must not eat memory
MAX_TOKEN_BYTES = 4096
LOOPBACK_NAMES = {"localhost"}


def rule(low=None, high=None, choices=None, doc="", check=None):
    """Field metadata: numeric bounds or allowed values, or ``check(value)``: why the value is unusable
    (None when it is fine)."""
    return {"low": low, "high": high, "choices": choices, "doc": doc, "check": check}


@dataclass(frozen=True)
class CameraConfig:
    """Where frames come from. ``source``: auto (the CSI camera if present, else the first webcam that opens),
    picamera2, webcam:N, /dev/videoN, a video, an image or a folder."""

    source: str = "auto"
    width: int = field(default=640, metadata=rule(16, 4096))
    height: int = field(default=480, metadata=rule(16, 4096))
    fps: int = field(default=30, metadata=rule(1, 240))
    realtime: bool = False
    loop: bool = False
    reopen_max_seconds: float = field(default=30.0, metadata=rule(0.1, 3600))
    max_pixels: int = field(
        default=40_000_000, metadata=rule(10_000, 400_000_000, doc="bigger images are refused undecoded")
    )


@dataclass(frozen=True)
class SegmentationConfig:
    """See device.segment.SegmentSettings for what each value does."""

    polarity: str = field(default="auto", metadata=rule(choices=("auto", "dark", "light")))
    work_size: int = field(default=800, metadata=rule(64, 4096))
    min_contrast: float = field(default=0.08, metadata=rule(0.01, 0.9))
    min_height: float = field(default=0.02, metadata=rule(0.005, 1.0))
    max_aspect: float = field(default=1.5, metadata=rule(0.2, 5.0))
    roi: list[float] = field(default_factory=list, metadata=rule(doc="[x, y, w, h] fractions, or empty"))
    plain_pages: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """The TFLite model; empty path means the shipped one (device/models/digits_int8.tflite, package data)."""

    path: str = ""
    threads: int = field(default=1, metadata=rule(1, 16))
    verify_sha256: bool = True


@dataclass(frozen=True)
class DecisionConfig:
    """Confidence threshold and the temporal vote for live sources."""

    min_confidence: float = field(default=0.5, metadata=rule(0.0, 1.0))
    none_threshold: float = field(default=0.7, metadata=rule(0.0, 1.0))
    vote_frames: int = field(default=5, metadata=rule(1, 100))
    vote_needed: int = field(default=3, metadata=rule(1, 100))
    empty_frames: int = field(default=10, metadata=rule(1, 10000))
    # Plausibility rules (device.plausibility), checked on each new stable reading before any output sees it.
    digits: list[int] = field(default_factory=list, metadata=rule(0, 64, doc="[] any, [n] exact, [lo, hi]"))
    pattern: str = field(default="", metadata=rule(doc="regular expression the whole text must match"))
    value_range: list[float] = field(default_factory=list, metadata=rule(doc="[low, high] or empty"))
    monotonic: bool = False
    max_change_per_minute: float = field(default=0.0, metadata=rule(0.0, 1e12, doc="0 = no limit"))
    on_implausible: str = field(default="keep", metadata=rule(choices=("keep", "publish")))


@dataclass(frozen=True)
class GpioBcdConfig:
    """Four LEDs show one digit in binary (bit 0 first); an optional LED lights while a reading is valid."""

    pins: list[int] = field(default_factory=lambda: [5, 6, 13, 19], metadata=rule(0, 53))
    valid_pin: int = field(default=26, metadata=rule(-1, 53, doc="-1 for none"))
    active_high: bool = True
    digit: str = field(default="last", metadata=rule(choices=("last", "first"), doc="which digit of several"))


@dataclass(frozen=True)
class Gpio7SegConfig:
    """Seven-segment display: segment pins a-g, optional decimal point, one select pin per digit."""

    segment_pins: list[int] = field(default_factory=lambda: [17, 27, 22, 10, 9, 11, 0], metadata=rule(0, 53))
    dp_pin: int = field(default=-1, metadata=rule(-1, 53, doc="-1 for none"))
    digit_pins: list[int] = field(default_factory=list, metadata=rule(0, 53, doc="empty for a single digit"))
    common_anode: bool = False


@dataclass(frozen=True)
class GpioLedConfig:
    """One LED that lights while the reading matches ``match`` (a regular expression for the whole reading,
    e.g. "42" or "4[0-9]"; empty: any sure digit)."""

    pin: int = field(default=21, metadata=rule(0, 53))
    match: str = ""
    active_high: bool = True


@dataclass(frozen=True)
class WindowConfig:
    """OpenCV preview window."""

    title: str = "digit-reader"
    scale: float = field(default=1.0, metadata=rule(0.1, 4.0))


@dataclass(frozen=True)
class WebConfig:
    """Live preview over HTTP; binding beyond loopback needs a token."""

    bind: str = "127.0.0.1:8088"
    token: str = ""
    token_file: str = field(default="", metadata=rule(doc="file holding the token (first line), or empty"))
    max_fps: float = field(default=10.0, metadata=rule(0.5, 60.0))
    max_viewers: int = field(default=4, metadata=rule(1, 64, doc="MJPEG streams at once; more get 503"))
    max_connections: int = field(default=24, metadata=rule(2, 256, doc="requests at once; more get 503"))
    header_timeout: float = field(default=5.0, metadata=rule(0.5, 120.0, doc="seconds to send a request"))
    health_seconds: float = field(default=10.0, metadata=rule(1.0, 3600.0, doc="/healthz: a frame in N s"))


@dataclass(frozen=True)
class MqttConfig:
    """MQTT output with Home Assistant discovery (device.outputs.mqtt)."""

    url: str = field(
        default="",
        metadata=rule(
            doc="mqtt://HOST[:PORT] or mqtts://HOST[:PORT]", check=lambda url: url and mqtt_url_problem(url)
        ),
    )
    base_topic: str = field(default="", metadata=rule(doc='"" = digit-reader/<hostname>'))
    client_id: str = field(default="", metadata=rule(doc='"" = digit-reader-<hostname>'))
    username: str = ""
    password_file: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive: int = field(default=60, metadata=rule(5, 3600))
    qos: int = field(default=1, metadata=rule(0, 2))
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    heartbeat_seconds: float = field(default=300.0, metadata=rule(0.0, 86400, doc="0 = off"))
    queue_size: int = field(default=100, metadata=rule(1, 100000))
    reconnect_max_seconds: float = field(default=60.0, metadata=rule(1.0, 3600))


@dataclass(frozen=True)
class SaveCropsConfig:
    """``--save-crops``: each digit the model saw (28x28 and raw) in ``folder/<digit>/``; "" = off."""

    folder: str = ""
    max_files: int = field(default=5000, metadata=rule(1, 10**9, doc="stop saving at this many crops"))


@dataclass(frozen=True)
class EmulatorConfig:
    """``--emulate``: the camera view beside a virtual panel drawn from the mock GPIO pins' states."""

    enabled: bool = False


@dataclass(frozen=True)
class OutputConfig:
    """Which outputs run (several at once) and their settings."""

    enabled: list[str] = field(default_factory=lambda: ["log"], metadata=rule(choices=OUTPUT_KINDS))
    pin_factory: str = field(default="default", metadata=rule(choices=pin_factories))
    gpio_bcd: GpioBcdConfig = field(default_factory=GpioBcdConfig)
    gpio_7seg: Gpio7SegConfig = field(default_factory=Gpio7SegConfig)
    gpio_led: GpioLedConfig = field(default_factory=GpioLedConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    web: WebConfig = field(default_factory=WebConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    save_crops: SaveCropsConfig = field(default_factory=SaveCropsConfig)
    emulator: EmulatorConfig = field(default_factory=EmulatorConfig)


@dataclass(frozen=True)
class ServiceConfig:
    """The always-on loop."""

    log_level: str = field(default="info", metadata=rule(choices=("debug", "info", "warning", "error")))
    stats_seconds: float = field(default=60.0, metadata=rule(1.0, 86400))
    max_frames: int = field(default=0, metadata=rule(0, 2**62, doc="0 = run forever"))
    frame_timeout: float = field(
        default=10.0, metadata=rule(0.5, 600.0, doc="a frame slower than this is abandoned and counted")
    )
    stall_seconds: float = field(default=20.0, metadata=rule(0.0, 86400, doc="0 = no stall detection"))


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)


def _short(value) -> str:
    """repr() for messages: one short line whatever the value (5,000 nested lists included)."""
    try:
        text = repr(value)
    except RecursionError:
        text = "a deeply nested value"
    return text if len(text) <= 80 else text[:77] + "..."


def _check_value(subject: Callable[[str, object], str], key: str, value, hint, meta: dict):
    """``value`` checked against its type and rule; errors begin with ``subject(key, value)``: the key and
    value for a file (``config.toml: camera.fps = 0``), the flag for the command line (``--threads 0``)."""
    shown = value  # messages quote the value as the user wrote it
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{subject(key, value)}: must be true or false")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{subject(key, value)}: must be a whole number")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{subject(key, value)}: must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{subject(key, shown)}: must be a finite number (not nan or inf)")
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{subject(key, value)}: must be a string")
    elif origin is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{subject(key, value)}: must be a list")
        return [_check_value(subject, f"{key}[{i}]", v, item_type, meta) for i, v in enumerate(value)]
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices")
    choices = choices() if callable(choices) else choices
    if low is not None and high is None and value < low:
        raise ConfigError(f"{subject(key, shown)}: must be at least {low}")
    if low is not None and high is not None and not (low <= value <= high):
        raise ConfigError(f"{subject(key, shown)}: must be between {low} and {high}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{subject(key, shown)}: must be one of {', '.join(choices)}")
    if meta.get("check") is not None and (problem := meta["check"](value)):
        raise ConfigError(f"{subject(key, shown)}: {problem}")
    return value


def _in_file(where: str) -> Callable[[str, object], str]:
    return lambda key, value: f"{where}{key} = {_short(value)}"


def _build(cls, table: dict, where: str, prefix: str):
    if not isinstance(table, dict):
        raise ConfigError(f"{where}{prefix.rstrip('.')} must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{where}{prefix}{key}: unknown key (known: {', '.join(k for k in fields)})")
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, where, f"{prefix}{key}.")
        else:
            values[name] = _check_value(
                _in_file(where), prefix + key, value, hint, dict(fields[name].metadata)
            )
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover - guarded by the checks above
        raise ConfigError(f"{where}{prefix}: {exc}") from None


def validate(config: Config, where: str = "") -> Config:
    """Rules that span several keys."""
    d = config.decision
    if d.vote_needed > d.vote_frames:
        raise ConfigError(
            f"{where}decision.vote_needed = {d.vote_needed}: "
            f"must not exceed decision.vote_frames ({d.vote_frames})"
        )
    roi = config.segmentation.roi
    if roi and (
        len(roi) != 4
        or min(roi) < 0
        or roi[0] + roi[2] > 1.0001
        or roi[1] + roi[3] > 1.0001
        or roi[2] <= 0
        or roi[3] <= 0
    ):
        raise ConfigError(
            f"{where}segmentation.roi = {roi!r}: must be [x, y, w, h] fractions inside the frame"
        )
    if len(config.output.gpio_bcd.pins) != 4:
        raise ConfigError(f"{where}output.gpio_bcd.pins = {config.output.gpio_bcd.pins!r}: must list 4 pins")
    if len(config.output.gpio_7seg.segment_pins) != 7:
        raise ConfigError(
            f"{where}output.gpio_7seg.segment_pins = {config.output.gpio_7seg.segment_pins!r}: "
            "must list 7 pins (a-g)"
        )
    try:
        re.compile(config.output.gpio_led.match)
    except re.error as exc:
        raise ConfigError(
            f"{where}output.gpio_led.match = {config.output.gpio_led.match!r}: "
            f"not a regular expression ({exc})"
        ) from None
    _validate_house(config, where)
    for kind in config.output.enabled:
        if config.output.enabled.count(kind) > 1:
            raise ConfigError(f"{where}output.enabled = {config.output.enabled!r}: {kind} is listed twice")
    _check_pins(config, where)
    out = config.output
    if out.emulator.enabled and (
        out.pin_factory != "mock" or not {"gpio-bcd", "gpio-7seg"} <= set(out.enabled)
    ):
        raise ConfigError(
            f"{where}output.emulator.enabled = true: needs output.pin_factory = 'mock' and the gpio-bcd and "
            "gpio-7seg outputs (--emulate sets them)"
        )
    web = config.output.web
    host, _ = parse_bind(web.bind, where)
    if "web" in config.output.enabled and not is_loopback(host) and not web_token(web, where):
        raise ConfigError(
            f"{where}web bind {web.bind}: binding beyond this machine needs a token "
            "(--web-token or [output.web] token)"
        )
    return config


def _check_pins(config: Config, where: str) -> None:
    """Every GPIO pin an enabled output drives is used once (a pin cannot be two LEDs)."""
    bcd, seg = config.output.gpio_bcd, config.output.gpio_7seg
    groups = {
        "gpio-bcd": [("output.gpio_bcd.pins", p) for p in bcd.pins]
        + ([("output.gpio_bcd.valid_pin", bcd.valid_pin)] if bcd.valid_pin >= 0 else []),
        "gpio-7seg": [("output.gpio_7seg.segment_pins", p) for p in seg.segment_pins]
        + ([("output.gpio_7seg.dp_pin", seg.dp_pin)] if seg.dp_pin >= 0 else [])
        + [("output.gpio_7seg.digit_pins", p) for p in seg.digit_pins],
    }
    # Each output's own pins must differ even when it is not enabled; across outputs only when both are.
    for pins in groups.values():
        _unique(pins, where, "")
    both = [pin for kind, pins in groups.items() if kind in config.output.enabled for pin in pins]
    _unique(both, where, " (both outputs are enabled)")


def _unique(pins: list[tuple[str, int]], where: str, note: str) -> None:
    seen: dict[int, str] = {}
    for key, pin in pins:
        if pin in seen:
            raise ConfigError(f"{where}{key}: GPIO {pin} is also used by {seen[pin]}; each pin once{note}")
        seen[pin] = key


def parse_bind(bind: str, where: str = "") -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); raises ConfigError naming the value and the rule."""
    host, sep, port = bind.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    ok = bool(sep and bare and port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535)
    if ok and not _valid_host(bare):
        ok = False
    if not ok:
        raise ConfigError(
            f"{where}web bind {bind!r}: must be HOST:PORT with an IP address or host name and a port "
            "0-65535, e.g. 127.0.0.1:8088"
        )
    return bare, int(port)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63 and label.isascii() and label.replace("-", "").isalnum() for label in labels
    )


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_token(web: WebConfig, where: str = "") -> str:
    """The web token: ``token`` itself, else the first line of ``token_file`` (readable only by the service,
    so it never shows in ``/proc/PID/cmdline`` or a world-readable config)."""
    if web.token or not web.token_file:
        return web.token
    data = read_regular(web.token_file, "web token file", MAX_TOKEN_BYTES, ConfigError)
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"{where}output.web.token_file {web.token_file}: must be UTF-8 text") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"{where}output.web.token_file {web.token_file}: is empty (want the token)")
    return token


def mqtt_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable broker address (None when it is)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (the port must be 1-65535)"
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.path not in ("", "/"):
        return "must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user or password (use output.mqtt.username and password_file)"
    if port == 0:
        return "the port must be 1-65535"
    return None


def _validate_house(config: Config, where: str) -> None:
    """Plausibility rules and the MQTT output: rules that span keys or need parsing."""
    import re

    d = config.decision
    if len(d.digits) > 2 or (len(d.digits) == 2 and d.digits[0] > d.digits[1]):
        raise ConfigError(
            f"{where}decision.digits = {d.digits!r}: must be [], [n] or [low, high] with low <= high"
        )
    if d.pattern:
        try:
            re.compile(d.pattern)
        except re.error as exc:
            raise ConfigError(
                f"{where}decision.pattern = {d.pattern!r}: not a regular expression ({exc})"
            ) from None
    if d.value_range and (len(d.value_range) != 2 or d.value_range[0] > d.value_range[1]):
        raise ConfigError(
            f"{where}decision.value_range = {d.value_range!r}: must be [] or [low, high] with low <= high"
        )
    m = config.output.mqtt
    if "mqtt" in config.output.enabled and not m.url:
        raise ConfigError(f"{where}output.mqtt.url = '': must be set when the mqtt output is enabled")
    for key in ("base_topic", "discovery_prefix"):
        value = getattr(m, key)
        if any(c in value for c in "#+") or value.startswith("/") or value.endswith("/"):
            raise ConfigError(
                f"{where}output.mqtt.{key} = {value!r}: must be a topic without #, + or a leading/trailing /"
            )
    if not m.discovery_prefix:
        raise ConfigError(f"{where}output.mqtt.discovery_prefix = '': must not be empty")
    if (m.cert_file == "") != (m.key_file == ""):
        raise ConfigError(
            f"{where}output.mqtt.cert_file = {m.cert_file!r}: "
            "a client certificate needs both cert_file and key_file"
        )


def from_dict(data: dict, where: str = "") -> Config:
    """Build and validate a Config from a parsed TOML table."""
    return validate(_build(Config, data, where, ""), where)


def load_config(path: str | Path | None) -> Config:
    """Load a TOML config file; None gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    raw = read_regular(path, "config", MAX_CONFIG_BYTES, ConfigError)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (nested too deeply)") from None
    return from_dict(data, f"{path}: ")


def override(config: Config, flag: str, key: str, value, at_least: float | None = None) -> Config:
    """``config`` with the dotted ``key`` set to a command-line flag's ``value``, checked by the key's own
    rule and named by the flag (``--threads 0: must be between 1 and 16``). ``at_least`` tightens the
    lower bound where a value that means "off" in a file is a mistake on the command line (``--max-frames
    0``). Rules across keys are checked once all flags are in: :func:`validate`."""
    *path, name = key.split(".")
    owners = [config]
    for section in path:
        owners.append(getattr(owners[-1], section))
    owner = owners[-1]
    meta = dict(next(f for f in dataclasses.fields(owner) if f.name == name).metadata)
    if at_least is not None:
        meta.update(low=at_least, high=None)
    hint = typing.get_type_hints(type(owner))[name]
    checked = _check_value(lambda _key, shown: f"{flag} {_flag_value(shown)}", key, value, hint, meta)
    for owner, attribute in zip(reversed(owners), reversed([*path, name]), strict=True):
        checked = dataclasses.replace(owner, **{attribute: checked})
    return checked


def _flag_value(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def replace(config: Config, section: str, **changes) -> Config:
    """A copy of ``config`` with some keys of one section changed (for command-line overrides)."""
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **changes)})

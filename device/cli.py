"""``device-run``: the digit reader on a camera, a video, an image or a folder.

Exit codes: 0 ok, 2 bad arguments or config, 3 model problem, 4 source problem; each failure is one line
on stderr. JSON results go to stdout, logs to stderr (plain lines: journald adds the time).
Ctrl-C, SIGTERM and SIGHUP stop it cleanly at any moment (outputs switched off, no traceback); a reader
that closes stdout (``| head -1``) ends it quietly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import ConfigError, DigitReaderError, FrameError, ModelError, OutputError, SourceError

if (
    TYPE_CHECKING
):  # the rest loads inside main(), where Ctrl-C is handled: start-up ends quietly at any moment
    from device.config import CameraConfig, Config
    from device.pipeline import FramePipeline
    from device.segment import SegmentSettings
    from device.sources import FrameSource

log = logging.getLogger("device")
MAX_MODEL_BYTES = 64 << 20
# Native libraries' own chatter (ffmpeg: thousands of lines for one corrupt video); our errors say enough.
QUIET_NATIVE = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8", "TF_CPP_MIN_LOG_LEVEL": "2"}

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_VIDEO = DEMO_DIR / "demo.mp4"
NO_WINDOW_HELP = (
    "--demo: no window although a display is present: this OpenCV has no GUI support "
    "(opencv-python-headless); for a window use the emulate extra in its own venv: python3 -m venv .venv-gui "
    "&& .venv-gui/bin/pip install -e '.[emulate]'; printing JSON lines instead"
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the contract), not the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parse_args(argv=None) -> argparse.Namespace:
    from device.config import OUTPUT_KINDS

    parser = _Parser(
        prog="device-run",
        description="Read handwritten digits from a camera, video, image or folder.",
        epilog="Sources: auto (default: the CSI camera, else the first webcam), picamera2, webcam:N, "
        "/dev/videoN, VIDEO, IMAGE, FOLDER. Outputs: " + ", ".join(OUTPUT_KINDS),
    )
    parser.add_argument("--config", help="TOML config file (default: built-in defaults)")
    parser.add_argument("--check-config", metavar="FILE", help="validate a config file and exit")
    parser.add_argument("--source", help="frame source (overrides camera.source)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run on the bundled demo video (window if a display is present, else log)",
    )
    parser.add_argument("--output", help="comma-separated outputs, e.g. log,gpio-7seg,window")
    parser.add_argument("--pin-factory", help="gpiozero pin factory: lgpio (Pi 5), mock (desktop), ...")
    parser.add_argument("--led-pin", type=int, metavar="N", help="gpio-led: its BCM pin (default 21)")
    parser.add_argument(
        "--led-match", metavar="REGEX", help="gpio-led: lit while the reading matches, e.g. 42 (default: any)"
    )
    parser.add_argument("--model", help="TFLite model (default: the shipped models/digits_int8.tflite)")
    parser.add_argument("--threads", type=int, help="inference threads")
    parser.add_argument("--max-frames", type=int, help="stop after N processed frames")
    parser.add_argument("--once", action="store_true", help="process one frame and print its reading")
    parser.add_argument("--json", action="store_true", help="with --once: print one JSON object")
    parser.add_argument("--realtime", action="store_true", help="pace a video at its own frame rate")
    parser.add_argument("--loop", action="store_true", help="start a video or folder again at its end")
    parser.add_argument(
        "--web-bind", metavar="HOST:PORT", help="web preview address (default 127.0.0.1:8088)"
    )
    parser.add_argument("--web-token", metavar="TOKEN", help="token the web preview requires off loopback")
    parser.add_argument(
        "--web-token-file", metavar="FILE", help="read the web token from FILE (keeps it out of ps)"
    )
    parser.add_argument(
        "--mqtt-url", metavar="URL", help="MQTT broker mqtt://HOST[:PORT] or mqtts://...; enables output mqtt"
    )
    parser.add_argument(
        "--mqtt-forget",
        action="store_true",
        help="remove this reader's Home Assistant entities (empty retained discovery configs) and exit",
    )
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="desktop emulation: mock GPIO pins shown on a virtual panel beside the camera view",
    )
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--save-crops", metavar="DIR", help="save each digit (28x28 and raw) in DIR/<digit>/")
    parser.add_argument(
        "--save-crops-max", type=int, default=5000, metavar="N", help="stop saving at N crops"
    )
    return parser.parse_args(argv)


def effective_config(args: argparse.Namespace) -> Config:
    """The config file (or defaults) with command-line overrides applied and checked."""
    from device.config import OUTPUT_KINDS, load_config, replace, validate

    config = load_config(args.config)
    if args.demo:
        config = replace(config, "camera", source=str(DEMO_VIDEO))
        if os.environ.get("DISPLAY") and _has_gui():
            # On screen, play the demo at its own pace so a person can watch it.
            config = replace(replace(config, "output", enabled=["window", "log"]), "camera", realtime=True)
        else:
            if os.environ.get("DISPLAY"):
                log.warning(NO_WINDOW_HELP)
            config = replace(config, "output", enabled=["log"])
    if args.source:
        config = replace(config, "camera", source=args.source)
    if args.realtime:
        config = replace(config, "camera", realtime=True)
    if args.loop:
        config = replace(config, "camera", loop=True)
    if args.output is not None:
        kinds = [k.strip() for k in args.output.split(",") if k.strip()]
        for kind in kinds:
            if kind not in OUTPUT_KINDS:
                raise ConfigError(
                    f"--output {kind}: unknown output, must be one of {', '.join(OUTPUT_KINDS)}"
                )
        config = replace(config, "output", enabled=kinds)
    if args.pin_factory:
        from device.config import PIN_FACTORIES

        if args.pin_factory not in PIN_FACTORIES:
            raise ConfigError(f"--pin-factory {args.pin_factory}: must be one of {', '.join(PIN_FACTORIES)}")
        config = replace(config, "output", pin_factory=args.pin_factory)
    if args.led_pin is not None or args.led_match is not None:
        led = config.output.gpio_led
        if args.led_pin is not None and not 0 <= args.led_pin <= 53:
            raise ConfigError(f"--led-pin {args.led_pin}: must be a BCM pin number between 0 and 53")
        led = dataclasses.replace(
            led,
            pin=led.pin if args.led_pin is None else args.led_pin,
            match=led.match if args.led_match is None else args.led_match,
        )
        config = validate(replace(config, "output", gpio_led=led), "")
    if args.emulate:
        outputs = [k for k in config.output.enabled if k not in ("window", "gpio-bcd", "gpio-7seg")]
        config = replace(config, "output", enabled=[*outputs, "gpio-bcd", "gpio-7seg"], pin_factory="mock")
        if not args.source and not args.demo:
            config = replace(config, "camera", source="webcam:0")
    if args.web_bind or args.web_token is not None or args.web_token_file:
        web = config.output.web
        token = web.token if args.web_token is None else args.web_token
        token_file = args.web_token_file or web.token_file
        config = replace(
            config,
            "output",
            web=dataclasses.replace(web, bind=args.web_bind or web.bind, token=token, token_file=token_file),
        )
    if args.mqtt_url is not None:
        from device.config import mqtt_url_problem

        if problem := mqtt_url_problem(args.mqtt_url):
            raise ConfigError(f"--mqtt-url {args.mqtt_url}: {problem}")
        mqtt = dataclasses.replace(config.output.mqtt, url=args.mqtt_url)
        enabled = [k for k in config.output.enabled if k != "mqtt"] + ["mqtt"]
        config = replace(config, "output", mqtt=mqtt, enabled=enabled)
    if args.model:
        config = replace(config, "model", path=args.model)
    if args.threads is not None:
        if not 1 <= args.threads <= 16:
            raise ConfigError(f"--threads {args.threads}: must be between 1 and 16")
        config = replace(config, "model", threads=args.threads)
    if args.max_frames is not None:
        if args.max_frames < 1:
            raise ConfigError(f"--max-frames {args.max_frames}: must be at least 1")
        config = replace(config, "service", max_frames=args.max_frames)
    if args.log_level:
        config = replace(config, "service", log_level=args.log_level)
    return validate(config)  # the same rules as --check-config, on the overridden values


def _has_gui() -> bool:
    from device.outputs.window import has_gui

    return has_gui()


def segment_settings(config: Config) -> SegmentSettings:
    from device.segment import SegmentSettings

    s = config.segmentation
    return SegmentSettings(
        polarity=s.polarity,
        work_size=s.work_size,
        min_contrast=s.min_contrast,
        min_height=s.min_height,
        max_aspect=s.max_aspect,
        roi=tuple(s.roi) if s.roi else None,
    )


def build_outputs(
    config: Config,
    skip_log: bool = False,
    args=None,
    live: bool = True,
    stop=None,
    model_info=None,
    health=None,
) -> list:
    """Create the enabled outputs; on failure, close the ones already made."""
    from device.config import web_token
    from device.outputs.gpio import BcdLeds, MatchLed, SevenSegment, make_pin_factory

    outputs = []
    if args is not None and args.save_crops:
        from device.outputs.crops import CropSaver

        if args.save_crops_max < 1:
            raise ConfigError(f"--save-crops-max {args.save_crops_max}: must be at least 1")
        outputs.append(CropSaver(args.save_crops, args.save_crops_max, live))
    factory = None
    try:
        for kind in config.output.enabled:
            if kind == "log":
                if not skip_log:
                    from device.outputs.log import JsonLinesOutput

                    outputs.append(JsonLinesOutput())
            elif kind in ("gpio-bcd", "gpio-7seg", "gpio-led"):
                if factory is None:
                    factory = make_pin_factory(config.output.pin_factory)
                try:
                    if kind == "gpio-bcd":
                        c = config.output.gpio_bcd
                        outputs.append(
                            BcdLeds(c.pins, c.valid_pin, c.active_high, pin_factory=factory, digit=c.digit)
                        )
                    elif kind == "gpio-led":
                        c = config.output.gpio_led
                        outputs.append(MatchLed(c.pin, c.match, c.active_high, pin_factory=factory))
                    else:
                        c = config.output.gpio_7seg
                        outputs.append(
                            SevenSegment(
                                c.segment_pins, c.dp_pin, c.digit_pins, c.common_anode, pin_factory=factory
                            )
                        )
                except DigitReaderError:
                    raise
                except Exception as exc:  # gpiozero: BadPinFactory, PinInUse, GPIOPinInUse...
                    raise ConfigError(
                        f"output {kind}: cannot open its pins ({type(exc).__name__}: {exc})"
                    ) from None
            elif kind == "window":
                from device.outputs.window import WindowOutput

                outputs.append(WindowOutput(config.output.window.title, config.output.window.scale))
            elif kind == "web":
                from device.outputs.web import WebOutput

                w = config.output.web
                outputs.append(
                    WebOutput(
                        w.bind,
                        web_token(w),
                        w.max_fps,
                        model_info,
                        max_viewers=w.max_viewers,
                        max_connections=w.max_connections,
                        header_timeout=w.header_timeout,
                        health_seconds=w.health_seconds,
                    )
                )
                outputs[-1].health = health
            elif kind == "mqtt":
                from device.outputs.mqtt import MqttOutput

                outputs.append(MqttOutput(config.output.mqtt, model_info, health))
        if args is not None and getattr(args, "emulate", False):
            from device.outputs.emulator import EmulatorWindow

            seg, bcd = config.output.gpio_7seg, config.output.gpio_bcd
            # After the GPIO outputs: it reads the pins they have just set.
            outputs.append(
                EmulatorWindow(
                    factory,
                    seg.segment_pins,
                    bcd.pins,
                    bcd.valid_pin,
                    seg.common_anode,
                    bcd.active_high,
                    stop=stop,
                    bcd_digit=bcd.digit,
                )
            )
    except BaseException:
        for output in outputs:
            output.close()
        raise
    return outputs


class _KeptOpen:
    """The web output, shown frames as usual but not closed with the loop: when a finite source (an image, a
    video) ends, the preview keeps serving the last frame until the reader is stopped."""

    def __init__(self, web):
        self.web = web

    def show(self, reading, frame, result, stats) -> None:
        self.web.show(reading, frame, result, stats)

    def close(self) -> None:  # closed by run() once it is stopped
        pass


def _keep_web_open(outputs: list):
    """Replace the web output in ``outputs`` by a _KeptOpen of it; None when there is none."""
    for i, output in enumerate(outputs):
        if type(output).__name__ == "WebOutput":
            outputs[i] = _KeptOpen(output)
            return outputs[i]
    return None


def open_camera(c: CameraConfig) -> FrameSource:
    """The frame source the ``[camera]`` section describes."""
    from device.sources import open_source

    return open_source(c.source, c.width, c.height, c.fps, c.realtime, c.loop, c.max_pixels)


def run_once(config: Config, pipeline: FramePipeline, as_json: bool, args=None) -> int:
    """Read one frame, print its reading (a JSON object with --json), drive the outputs once."""
    c = config.camera
    with open_camera(c) as source:
        frame = source.read()
    if frame is None:
        raise SourceError(f"source {c.source}: gave no frame")
    try:
        result = pipeline.process(frame)
    except Exception as exc:  # a frame the pipeline cannot take is a source problem (exit 4), one line
        shape = "x".join(str(n) for n in getattr(frame, "shape", ())[:2][::-1])
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
        raise FrameError(f"source {c.source}: frame {shape} cannot be read ({reason})") from None
    from device.decide import Decider
    from device.plausibility import PlausibleDecider, Rules

    reading = PlausibleDecider(Decider(live=False), Rules.from_config(config.decision)).update(result.digits)
    outputs = build_outputs(config, skip_log=True, args=args, live=False)
    try:
        for output in outputs:
            output.show(reading, frame, result, {"frames": 1, "fps": 0.0})
    finally:
        for output in outputs:
            output.close()
    from device.outputs.log import write_line

    write_line(sys.stdout, json.dumps(reading.as_dict(), allow_nan=False) if as_json else reading.text)
    return 0


def check_model_files(model_path: Path) -> None:
    """A model (and its card) must be regular files of sane size: a FIFO would block, /dev/zero never ends."""
    from device.classify import card_path_for
    from device.safeio import check_regular

    check_regular(model_path, "model", ModelError)
    if model_path.stat().st_size > MAX_MODEL_BYTES:
        raise ModelError(f"{model_path}: model is larger than {MAX_MODEL_BYTES >> 20} MB")
    card = card_path_for(model_path)
    if os.path.lexists(card):
        check_regular(card, "model card", ModelError)


def run(args: argparse.Namespace) -> int:
    from device.config import load_config

    if args.check_config:
        load_config(args.check_config)
        print(f"{args.check_config}: ok")
        return 0
    config = effective_config(args)
    logging.getLogger().setLevel(config.service.log_level.upper())
    if args.mqtt_forget:
        from device.outputs.mqtt import forget

        print(f"removed {forget(config.output.mqtt)} Home Assistant entities")
        return 0
    from device.classify import DEFAULT_MODEL, Classifier
    from device.pipeline import FramePipeline

    model_path = Path(config.model.path) if config.model.path else DEFAULT_MODEL
    check_model_files(model_path)
    classifier = Classifier(model_path, threads=config.model.threads, verify=config.model.verify_sha256)
    pipeline = FramePipeline(
        classifier,
        segment_settings(config),
        config.decision.min_confidence,
        none_threshold=config.decision.none_threshold,
    )
    if args.once:
        return _interruptible(run_once, config, pipeline, args.json, args)

    from device.decide import Decider
    from device.health import Health
    from device.notify import Notifier
    from device.plausibility import PlausibleDecider, Rules
    from device.service import ReaderLoop

    c = config.camera
    stop = _STOP  # already set if a signal came during start-up (and some library swallowed the interrupt)

    def on_signal(signum, _frame):
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    if stop.is_set():
        raise KeyboardInterrupt

    source = open_camera(c)
    first = [source]

    def open_again():
        # The first open already happened (so a bad source fails fast with exit 4); reopen afterwards.
        return first.pop() if first else open_camera(c)

    d = config.decision
    decider = PlausibleDecider(
        Decider(d.vote_frames, d.vote_needed, d.empty_frames, live=source.live), Rules.from_config(d)
    )
    health = Health(config.service.stall_seconds)
    try:
        model_info = {
            "name": classifier.model_path.name,
            "sha256": classifier.sha256,
            "backend": classifier.backend,
        }
        outputs = build_outputs(
            config, args=args, live=source.live, stop=stop, model_info=model_info, health=health
        )
        outputs.insert(0, health)  # first: the stall state is cleared before the others publish
    except BaseException:
        health.close()
        source.close()
        raise
    held = _keep_web_open(outputs)
    notifier = Notifier()
    loop = ReaderLoop(
        open_again,
        pipeline,
        decider,
        outputs,
        stop,
        notifier,
        config.service.max_frames,
        c.reopen_max_seconds,
        config.service.stats_seconds,
        config.service.frame_timeout,
    )
    try:
        stats = loop.run()
        limit = config.service.max_frames
        ended = not stop.is_set() and (not limit or stats.frames < limit)  # not stopped, not at --max-frames
        if held is not None and ended and "window" not in config.output.enabled:  # (in a window, q quits)
            held.web.source_ended = True
            log.info(
                "source %s has ended; the web preview keeps serving its last frame until stopped "
                "(Ctrl-C or SIGTERM)",
                c.source,
            )
            stop.wait()
    finally:
        notifier.close()
        if held is not None:
            held.web.close()
    log.info(
        "stopped after %d frames (%d bad, %d reopens); last reading %r",
        stats.frames,
        stats.bad_frames,
        stats.reopens,
        decider.current.text,
    )
    return 0


def main(argv=None) -> int:
    """Console entry point."""
    try:
        for key, value in QUIET_NATIVE.items():
            os.environ.setdefault(key, value)
        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
        args = parse_args(argv)
        # SIGTERM/SIGHUP before the loop installs its handlers: the same quiet exit as Ctrl-C.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        code = run(args)
        try:
            sys.stdout.flush()  # a full disk or a closed pipe shows here, not in the interpreter's exit
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write to stdout ({exc.strerror or exc})") from None
        return code
    except DigitReaderError as exc:
        if isinstance(exc, OutputError):
            _silence_stdout()
        print(f"device-run: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of stdout has gone (device-run ... | head -1): nothing more to say, to anyone.
        _silence_stdout()
        return 0


def _interruptible(function, *args):
    """Run ``function`` on a thread so Ctrl-C is answered at once even while native code (a decode, a
    segmentation) holds the main thread's attention; the process then ends without waiting for it."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed back to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="once", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        sys.stderr.flush()
        os._exit(130)  # the worker may be inside native code; nothing of it needs finishing
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


_STOP = threading.Event()


def _interrupt(signum, _frame):
    _STOP.set()
    raise KeyboardInterrupt


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())

"""``device-run``: the digit reader on a camera, a video, an image or a folder.

Exit codes: 0 ok, 2 bad arguments or config, 3 model problem, 4 source problem; each failure is one line
on stderr. JSON results go to stdout, logs to stderr (plain lines: journald adds the time).
Ctrl-C, SIGTERM and SIGHUP stop it cleanly at any moment (outputs switched off, no traceback); a reader
that closes stdout (``| head -1``) ends it quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import DigitReaderError, FrameError, OutputError, SourceError

if (
    TYPE_CHECKING
):  # the rest loads inside main(), where Ctrl-C is handled: start-up ends quietly at any moment
    from device.config import Config
    from device.pipeline import FramePipeline

log = logging.getLogger("device")
# Native libraries' own chatter (ffmpeg: thousands of lines for one corrupt video); our errors say enough.
QUIET_NATIVE = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8", "TF_CPP_MIN_LOG_LEVEL": "2"}


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
    from device.outputs import OUTPUT_KINDS

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
    parser.add_argument("--model", help="TFLite model (default: the shipped one, device/models/)")
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
        "--save-crops-max", type=int, metavar="N", help="stop saving at N crops (default 5000)"
    )
    return parser.parse_args(argv)


def effective_config(args: argparse.Namespace) -> Config:
    """The config file (or the defaults) with the command-line flags laid over it: each flag is checked by
    the rule of the key it sets and named in the message, then the rules across keys run on the result,
    exactly as ``--check-config`` runs them on a file."""
    from device.config import load_config, override, validate

    config = load_config(args.config)
    enabled = list(config.output.enabled)
    if args.demo:
        config = override(config, "--demo", "camera.source", str(demo_dir() / "demo.mp4"))
        enabled = ["log"]
        if os.environ.get("DISPLAY") and _has_gui():
            # On screen, play the demo at its own pace so a person can watch it.
            enabled = ["window", "log"]
            config = override(config, "--demo", "camera.realtime", True)
        elif os.environ.get("DISPLAY"):
            log.warning(NO_WINDOW_HELP)
    for flag, key, value in (
        ("--source", "camera.source", args.source or None),
        ("--realtime", "camera.realtime", args.realtime or None),
        ("--loop", "camera.loop", args.loop or None),
        ("--pin-factory", "output.pin_factory", args.pin_factory or None),
        ("--led-pin", "output.gpio_led.pin", args.led_pin),
        ("--led-match", "output.gpio_led.match", args.led_match),
        ("--web-bind", "output.web.bind", args.web_bind or None),
        ("--web-token", "output.web.token", args.web_token),
        ("--web-token-file", "output.web.token_file", args.web_token_file or None),
        ("--mqtt-url", "output.mqtt.url", args.mqtt_url),
        ("--save-crops", "output.save_crops.folder", args.save_crops),
        ("--save-crops-max", "output.save_crops.max_files", args.save_crops_max),
        ("--model", "model.path", args.model or None),
        ("--threads", "model.threads", args.threads),
        ("--log-level", "service.log_level", args.log_level),
    ):
        if value is not None:
            config = override(config, flag, key, value)
    if args.max_frames is not None:  # 0 means "no limit" in a file; on the command line it is a mistake
        config = override(config, "--max-frames", "service.max_frames", args.max_frames, at_least=1)
    if args.output is not None:
        enabled = [kind.strip() for kind in args.output.split(",") if kind.strip()]
    if args.emulate:
        enabled = [k for k in enabled if k not in ("window", "gpio-bcd", "gpio-7seg")] + [
            "gpio-bcd",
            "gpio-7seg",
        ]
        config = override(config, "--emulate", "output.pin_factory", "mock")
        config = override(config, "--emulate", "output.emulator.enabled", True)
        if not args.source and not args.demo:
            config = override(config, "--emulate", "camera.source", "webcam:0")
    if args.mqtt_url is not None:
        enabled = [k for k in enabled if k != "mqtt"] + ["mqtt"]
    if enabled != list(config.output.enabled):
        config = override(config, "--output", "output.enabled", enabled)
    return validate(config)  # the rules across keys, as --check-config runs them


def demo_dir() -> Path:
    """The bundled demo (video, page and its text): package data, like the shipped model, so it is there in a
    wheel's install as in the source tree. Looked up here, not at import: start-up stays interruptible."""
    from importlib import resources

    return Path(str(resources.files("device") / "demo"))


def _has_gui() -> bool:
    from device.outputs.window import has_gui

    return has_gui()


def run_once(config: Config, pipeline: FramePipeline, as_json: bool) -> int:
    """Read one frame, print its reading (a JSON object with --json), drive the outputs once."""
    from device.assemble import OutputContext, make_decider, open_camera, open_outputs
    from device.events import FrameEvent, LoopStats
    from device.outputs.log import write_line

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
    reading = make_decider(config, live=False).update(result.digits)
    event = FrameEvent(reading, frame, result, LoopStats(frames=1))
    with contextlib.ExitStack() as stack:  # the JSON (or text) line below is this run's log output
        for _kind, output in open_outputs(stack, OutputContext(config, live=False), skip=("log",)):
            output.show(event)
    write_line(sys.stdout, json.dumps(reading.as_dict(), allow_nan=False) if as_json else reading.text)
    return 0


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
    from device.assemble import make_pipeline, open_classifier

    classifier = open_classifier(config)
    pipeline = make_pipeline(config, classifier)
    if args.once:
        return _interruptible(run_once, config, pipeline, args.json)
    return run_service(config, classifier, pipeline)


def run_service(config: Config, classifier, pipeline: FramePipeline) -> int:
    """The always-on reader: outputs opened in an ExitStack (closed by it), the loop until it ends."""
    from device.assemble import OutputContext, make_decider, open_camera, open_outputs
    from device.health import Health
    from device.notify import Notifier
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

    first = [open_camera(c)]  # opened before anything else, so a bad source fails fast with exit 4
    live = first[0].live

    def open_again():
        return first.pop() if first else open_camera(c)

    decider = make_decider(config, live)
    model_info = {
        "name": classifier.model_path.name,
        "sha256": classifier.sha256,
        "backend": classifier.backend,
    }
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: first and first.pop().close())  # not handed to the loop: start-up failed
        health = stack.enter_context(Health(config.service.stall_seconds))
        context = OutputContext(config, live=live, stop=stop, model_info=model_info, health=health)
        opened = open_outputs(stack, context)
        outputs = [health, *(output for _kind, output in opened)]  # health first: stall state cleared first
        notifier = stack.enter_context(contextlib.closing(Notifier()))
        loop = ReaderLoop(
            pipeline,
            decider,
            outputs,
            stop=stop,
            notifier=notifier,
            max_frames=config.service.max_frames,
            reopen_max_seconds=c.reopen_max_seconds,
            stats_seconds=config.service.stats_seconds,
            frame_timeout=config.service.frame_timeout,
        )
        stats = loop.run(open_again)
        web = next((output for kind, output in opened if kind.name == "web"), None)
        limit = config.service.max_frames
        ended = not stop.is_set() and (not limit or stats.frames < limit)  # not stopped, not at --max-frames
        if web is not None and ended and "window" not in config.output.enabled:  # (in a window, q quits)
            # Only the preview outlives the source: everything else (the pins) is switched off now.
            for _kind, output in opened:
                if output is not web:
                    output.close()
            web.source_ended = True
            log.info(
                "source %s has ended; the web preview keeps serving its last frame until stopped "
                "(Ctrl-C or SIGTERM)",
                c.source,
            )
            stop.wait()
    log.info(
        "stopped after %d frames (%d bad, %d cluttered, %d reopens); last reading %r",
        stats.frames,
        stats.bad_frames,
        stats.cluttered_frames,
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
        sys.unraisablehook = _quiet_about_interrupts
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
        if _STOP.is_set():  # an import cut short by Ctrl-C looks like a missing runtime: it is a stop
            return 130
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
    except Exception:
        # Ctrl-C during an import can surface wrapped in another error: a C extension's ImportError
        # (numpy), or the RuntimeError Python makes of anything raised while a class is created
        # (``platform``'s ``uname_result``, imported by the LiteRT runtime). Asked to stop, we stop.
        if _STOP.is_set():
            return 130
        raise


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
            if _STOP.is_set():  # a signal whose interrupt something swallowed (see _quiet_about_interrupts)
                raise KeyboardInterrupt
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


def _quiet_about_interrupts(unraisable) -> None:
    """``sys.unraisablehook``: a signal's interrupt that lands in code Python cannot raise from (a weak
    reference's callback, which the import machinery uses) is swallowed there and printed as "Exception
    ignored in" with a traceback. It is a stop all the same (``_STOP`` is set, and heeded), so nothing is
    printed of it; anything else unraisable is printed as Python prints it."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


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

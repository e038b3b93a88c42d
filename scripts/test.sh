#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian/Raspberry Pi OS machine and run them all:
#   1. the full suite (host + device) in .venv, made with the default python3;
#   2. the device tests again in .venv-pi: Debian's own python3 with the apt numpy and OpenCV in a
#      --system-site-packages venv and ai-edge-litert added without touching numpy - what a Pi runs.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# python3-venv/numpy/opencv: the Pi-like venv; openssh-server: deploy tests; systemd, systemd-container and
# debootstrap: the unit checks and the systemd-nspawn host; xvfb: the emulation window test; chromium: the
# web preview page; xdotool: a key press in the emulation window; mosquitto, mosquitto-clients and openssl:
# a real MQTT broker (plain and TLS) for the MQTT tests; python3-paho-mqtt and python3-prometheus-client: the
# Pi's MQTT client (1.6) and the /metrics parser; shellcheck: the lint of every shell script.
APT_PACKAGES=(python3-venv python3-numpy python3-opencv openssh-server systemd systemd-container debootstrap xvfb
              chromium xdotool mosquitto mosquitto-clients openssl python3-paho-mqtt python3-prometheus-client
              shellcheck)
missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
step() { echo "== [$(date +%H:%M:%S)] $*"; }

if [ ${#missing[@]} -gt 0 ]; then
    step "apt: updating the package lists"
    $SUDO apt-get update -qq
    step "apt: installing ${missing[*]} (the first time: a few minutes)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
    step "apt: all ${#APT_PACKAGES[@]} packages already installed"
fi

# Each pass writes its pytest output to a log; its summary line ("12 passed, 1 skipped in 3.1s") is shown at
# the end for both passes. A pass whose set-up fails counts as failed; the other pass still runs.
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

run_pytest() {  # pytest exits 5 when it collected nothing: that is a broken suite, not a pass
    local log=$1 status=0
    shift
    "$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
    if [ "$status" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; return 1; fi
    return "$status"
}

pass_venv() {
    step ".venv: creating it with $(python3 --version)"
    python3 -m venv .venv
    step ".venv: pip install -e '.[host,device,dev]' (TensorFlow included: about 2 GB, the first time several minutes)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[host,device,dev]'
    step ".venv: ruff check, ruff format --check, shellcheck"
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    shellcheck scripts/*.sh .ci/run
    step ".venv: pytest, host + device (the first run builds a Debian root for the systemd tests)"
    run_pytest "$LOGS/venv.log" .venv/bin/python -m pytest -q "$@"
}

pass_venv_pi() {
    step ".venv-pi: Debian python3 + apt numpy/OpenCV (Raspberry Pi OS stand-in)"
    /usr/bin/python3 -m venv --system-site-packages .venv-pi
    numpy_version=$(.venv-pi/bin/python -c 'import numpy; print(numpy.__version__)')
    echo "numpy==${numpy_version}" > .venv-pi/constraints.txt
    # No opencv-python-headless from PyPI here (the apt OpenCV is the Pi's), and numpy pinned to the apt one.
    step ".venv-pi: pip install ai-edge-litert gpiozero pytest (numpy pinned to the apt ${numpy_version})"
    .venv-pi/bin/python -m pip install -q -c .venv-pi/constraints.txt ai-edge-litert gpiozero pytest
    .venv-pi/bin/python -m pip install -q --no-deps -e .
    .venv-pi/bin/python - <<'PY'
import cv2, numpy, paho.mqtt
assert numpy.__file__.startswith("/usr/lib/python3/"), f"numpy was replaced: {numpy.__file__}"
assert paho.mqtt.__file__.startswith("/usr/lib/python3/"), f"paho-mqtt is not the apt one: {paho.mqtt.__file__}"
print(f"paho-mqtt {paho.mqtt.__version__} from apt")
assert cv2.__file__.startswith("/usr/lib/python3/"), f"OpenCV is not the apt one: {cv2.__file__}"
print(f"numpy {numpy.__version__} and OpenCV {cv2.__version__} from apt")
PY
    step ".venv-pi: pytest, device tests"
    run_pytest "$LOGS/venv-pi.log" .venv-pi/bin/python -m pytest -q \
        -m "not slow and not host and not deploy and not systemd" "$@"
}

summary_of() {  # the last pytest summary line in a log, or why there is none
    local line=""
    if [ -f "$1" ]; then
        line=$(grep -E '[0-9]+ (passed|failed|error|errors|skipped|deselected)' "$1" | tail -n 1 | tr -d '=' |
               sed -e 's/^ *//' -e 's/ *$//')
    fi
    echo "${line:-no test results (the set-up before pytest failed; see above)}"
}

set +e
( set -e; pass_venv "$@" )
venv_status=$?
( set -e; pass_venv_pi "$@" )
venv_pi_status=$?
set -e

verdict() { if [ "$1" -eq 0 ]; then echo "ok    "; else echo "FAILED"; fi; }
echo
echo "== summary"
echo "   .venv     $(verdict "$venv_status") $(summary_of "$LOGS/venv.log")"
echo "   .venv-pi  $(verdict "$venv_pi_status") $(summary_of "$LOGS/venv-pi.log")"
if [ "$venv_status" -ne 0 ] || [ "$venv_pi_status" -ne 0 ]; then exit 1; fi

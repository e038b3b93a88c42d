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
# web preview page; mosquitto, mosquitto-clients and openssl: a real MQTT broker (plain and TLS) for the MQTT
# tests; python3-paho-mqtt and python3-prometheus-client: the Pi's MQTT client (1.6) and the /metrics parser.
APT_PACKAGES=(python3-venv python3-numpy python3-opencv openssh-server systemd systemd-container debootstrap xvfb
              chromium mosquitto mosquitto-clients openssl python3-paho-mqtt python3-prometheus-client)
missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

run_pytest() {  # pytest exits 5 when it collected nothing: that is a broken suite, not a pass
    local status=0
    "$@" || status=$?
    if [ "$status" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; return 1; fi
    return "$status"
}

echo "== .venv: host + device + dev"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[host,device,dev]'
.venv/bin/ruff check .
run_pytest .venv/bin/python -m pytest -q "$@"

echo "== .venv-pi: Debian python3 + apt numpy/OpenCV (Raspberry Pi OS stand-in)"
/usr/bin/python3 -m venv --system-site-packages .venv-pi
numpy_version=$(.venv-pi/bin/python -c 'import numpy; print(numpy.__version__)')
echo "numpy==${numpy_version}" > .venv-pi/constraints.txt
# No opencv-python-headless from PyPI here (the apt OpenCV is the Pi's), and numpy pinned to the apt one.
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
run_pytest .venv-pi/bin/python -m pytest -q -m "not slow and not host and not deploy and not systemd" "$@"

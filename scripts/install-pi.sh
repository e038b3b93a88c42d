#!/usr/bin/env bash
# Install digit-reader on this Raspberry Pi (64-bit Raspberry Pi OS Bookworm/Trixie, or any Debian) to run it
# by hand, the way scripts/deploy.sh installs it for the service:
#   1. apt: python3-venv, python3-pip, python3-numpy, python3-opencv, python3-picamera2, python3-lgpio (the
#      ones this archive lacks - picamera2 and lgpio exist only in the Raspberry Pi archive - are skipped);
#   2. a venv made by Debian's own python3 with --system-site-packages, so the apt numpy, OpenCV and
#      picamera2 are used (picamera2's compiled parts are built against the apt numpy: it must stay);
#   3. ai-edge-litert and gpiozero with numpy pinned to the apt version (tflite-runtime where ai-edge-litert
#      cannot be installed), and this project without dependencies;
#   4. a check: numpy is still the apt one, and device-run reads the bundled demo page.
# Usage: scripts/install-pi.sh [--venv DIR] [--no-apt]      (default DIR: .venv in the project folder)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
APT=1
PYTHON=${PYTHON:-/usr/bin/python3}  # Debian's python3: the one the apt packages are built for
die() { echo "install-pi.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) [ $# -ge 2 ] || die "--venv needs a folder"; VENV=$2; shift ;;
        --no-apt) APT=0 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
step() { echo "== $*"; }

if [ "$APT" -eq 1 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: run as root, or use --no-apt"
        SUDO="sudo"
    fi
    wanted=(python3-venv python3-pip python3-numpy python3-opencv python3-picamera2 python3-lgpio)
    missing=()
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        step "apt: ${wanted[*]} already installed"
    else
        step "apt: not installed yet: ${missing[*]}"
        # Package lists older than a day (or none) are refreshed first.
        if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
            step "apt: updating the package lists"
            $SUDO apt-get update -qq
        fi
        install=()
        for package in "${missing[@]}"; do
            if apt-cache policy "$package" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -qv '(none)'; then
                install+=("$package")
            else
                echo "   $package: not in this archive, skipped (picamera2 and lgpio come with Raspberry Pi OS)"
            fi
        done
        if [ ${#install[@]} -gt 0 ]; then
            step "apt: installing ${install[*]}"
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${install[@]}" >/dev/null
        fi
    fi
fi

[ -x "$PYTHON" ] || die "$PYTHON not found (apt install python3)"
step "venv: $VENV ($("$PYTHON" --version), with the system site packages)"
"$PYTHON" -m venv --system-site-packages "$VENV"
numpy_version=$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)' 2>/dev/null) \
    || die "numpy is not importable from $PYTHON (apt install python3-numpy)"
echo "numpy==${numpy_version}" > "$VENV/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
step "pip: ai-edge-litert and gpiozero (numpy stays the apt ${numpy_version})"
if ! pip install -q -c "$VENV/constraints.txt" ai-edge-litert gpiozero; then
    echo "   ai-edge-litert is not installable here; trying tflite-runtime"
    pip install -q -c "$VENV/constraints.txt" tflite-runtime gpiozero
fi
if ! "$VENV/bin/python" -c 'import cv2' 2>/dev/null; then
    step "pip: opencv-python-headless (no apt OpenCV)"
    pip install -q -c "$VENV/constraints.txt" opencv-python-headless
fi
step "pip: digit-reader itself (editable, no dependencies)"
pip install -q --no-deps -e .

step "check: apt numpy kept, the demo page is read"
"$VENV/bin/python" - <<'PY'
import numpy
assert numpy.__file__.startswith("/usr/lib/python3/"), f"numpy was replaced: {numpy.__file__}"
try:
    import picamera2  # noqa: F401
    print("   picamera2: importable (the CSI camera can be used)")
except ImportError:
    print("   picamera2: not installed (USB webcams, videos and images work; CSI cameras need python3-picamera2)")
PY
expected=$(cat device/demo/page.txt)
got=$("$VENV/bin/device-run" --source device/demo/page.jpg --once 2>/dev/null) \
    || die "device-run failed on the demo page; run: $VENV/bin/device-run --source device/demo/page.jpg --once"
[ "$got" = "$expected" ] || die "device-run read '$got' on the demo page, expected '$expected'"
echo "   read '$got' on the demo page"
echo
echo "Installed. Run the reader (camera picked automatically: CSI camera, else the first webcam):"
echo "   $VENV/bin/device-run"
echo "or: $VENV/bin/device-run --source webcam:0 --output log,gpio-bcd    (README: Outputs and wiring)"

#!/usr/bin/env bash
# The host's half of scripts/deploy.sh: one step per call, run as root (directly or through sudo -n).
#
#   { printf 'set -- STEP ARG...\n'; cat scripts/deploy-remote.sh; } | ssh HOST sudo -n bash -s
#
# deploy.sh sends this file on stdin for every step, so nothing has to be on the host beforehand. The
# upload step reads the release tarball from the same stdin, after this script: bash reads a script from a
# pipe one line at a time, so the last line below has run (and exited) before any byte of the tarball is
# touched by anything but tar.
set -euo pipefail

step_lock() {  # lock PREFIX RELEASE STALE_SECONDS OWNER: one deploy at a time per host (exit 3 if held)
    local prefix=$1 release=$2 stale=$3 owner=$4 lock="$1/.deploy.lock" age
    mkdir -p "$prefix"
    if ! mkdir "$lock" 2>/dev/null; then
        age=$(( $(date +%s) - $(stat -c %Y "$lock" 2>/dev/null || date +%s) ))
        if [ "$age" -lt "$stale" ]; then
            echo "  held by $(cat "$lock/owner" 2>/dev/null || echo '?'), $age s ago"
            exit 3
        fi
        echo "  taking over a lock left $age s ago by $(cat "$lock/owner" 2>/dev/null || echo '?')"
    fi
    echo "$release from $owner" > "$lock/owner"
    touch "$lock"
}

step_unlock() {  # unlock PREFIX
    rm -rf "$1/.deploy.lock"
}

step_apt() {  # apt: the system packages (picamera2 and lgpio exist only in the Raspberry Pi archive)
    local wanted="python3-venv python3-pip python3-numpy python3-opencv python3-picamera2 python3-lgpio python3-paho-mqtt"
    local missing=() install=() p
    for p in $wanted; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then echo "  all installed"; return 0; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    for p in "${missing[@]}"; do  # skip what this archive lacks
        if apt-cache show "$p" >/dev/null 2>&1; then install+=("$p"); else echo "  $p: not in this archive, skipped"; fi
    done
    [ ${#install[@]} -eq 0 ] || apt-get install -y -q --no-install-recommends "${install[@]}" >/dev/null
    echo "  installed: ${install[*]}"
}

step_upload() {  # upload RELEASE_DIR: the release tarball follows this script on stdin
    mkdir -p "$1"
    tar -xzf - -C "$1" --no-same-owner
}

step_venv() {  # venv RELEASE_DIR: a venv over the system packages (apt numpy/OpenCV/picamera2), then the wheel
    cd "$1"
    python3 -m venv --system-site-packages venv
    venv/bin/python -c 'import numpy' 2>/dev/null || venv/bin/pip install -q 'numpy<2'
    venv/bin/python -c 'import numpy; print("numpy==" + numpy.__version__)' > constraints.txt
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    pip() { venv/bin/pip "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
    if ! pip install -q -c constraints.txt ai-edge-litert gpiozero; then
        echo '  ai-edge-litert not installable here; falling back to tflite-runtime'
        pip install -q -c constraints.txt tflite-runtime gpiozero
    fi
    venv/bin/python -c 'import cv2' 2>/dev/null || pip install -q -c constraints.txt opencv-python-headless
    venv/bin/python -c 'import paho.mqtt' 2>/dev/null || pip install -q -c constraints.txt paho-mqtt  # output mqtt
    # The wheel, not the release folder: the model and the demo are package data inside it.
    local wheels=(./*.whl)
    pip install -q --no-deps "${wheels[@]}"
    venv/bin/device-run --check-config systemd/config.toml >/dev/null
    echo "  $(cat constraints.txt), $(venv/bin/python -c 'import cv2; print("OpenCV " + cv2.__version__)')"
}

step_config() {  # config RELEASE_DIR ETC: install the default config, never overwriting the user's
    local rel_dir=$1 etc=$2 owner=()
    mkdir -p "$etc"
    # It may hold the web token: mode 0640, root:digit-reader (the service's group reads it, nobody else).
    if [ "$(id -u)" = 0 ]; then
        getent group digit-reader >/dev/null || groupadd --system digit-reader
        owner=(-o root -g digit-reader)
    fi
    put() {  # written beside and renamed into place: a lost connection never leaves half a config file
        install -m 0640 "${owner[@]}" "$rel_dir/systemd/config.toml" "$etc/.config.toml.tmp" && mv "$etc/.config.toml.tmp" "$1"
    }
    if [ -e "$etc/config.toml" ]; then  # an older deploy installed it world-readable
        chmod 0640 "$etc/config.toml"
        [ ${#owner[@]} -eq 0 ] || chown root:digit-reader "$etc/config.toml"
    fi
    if [ ! -e "$etc/config.toml" ]; then
        put "$etc/config.toml"; echo "  installed $etc/config.toml"
    elif ! cmp -s "$rel_dir/systemd/config.toml" "$etc/config.toml"; then
        put "$etc/config.toml.new"
        echo "  NOTE: kept your $etc/config.toml; the new default is $etc/config.toml.new (diff them)"
    fi
}

step_current() {  # current PREFIX: the release that is current now ("" when none)
    local target
    target=$(readlink "$1/current" 2>/dev/null || true)
    echo "${target#releases/}"
}

step_switch() {  # switch PREFIX RELEASE: the rename is atomic, current is the old or the new one, never neither
    ln -sfn "releases/$2" "$1/.current.new" && mv -T "$1/.current.new" "$1/current"
}

step_unit() {  # unit PREFIX ETC RELEASE_DIR: the system user, the unit with this host's paths, enabled
    local prefix=$1 etc=$2 rel_dir=$3 unit=/etc/systemd/system/digit-reader.service
    getent group gpio >/dev/null || groupadd --system gpio
    getent group video >/dev/null || groupadd --system video
    getent group digit-reader >/dev/null || groupadd --system digit-reader
    id digit-reader >/dev/null 2>&1 || useradd --system --home-dir /var/lib/digit-reader --no-create-home \
        --gid digit-reader --shell /usr/sbin/nologin --groups video,gpio digit-reader
    usermod -aG video,gpio digit-reader
    sed -e "s#@PREFIX@#$prefix#g" -e "s#/etc/digit-reader/#$etc/#g" "$rel_dir/systemd/digit-reader.service" > "$unit.new"
    mv "$unit.new" "$unit"
    systemctl daemon-reload
    systemctl enable digit-reader.service >/dev/null 2>&1
}

step_ready() {  # ready: restart the service and wait until it is READY (Type=notify) and stays up
    local state sub
    systemctl reset-failed digit-reader.service 2>/dev/null || true
    systemctl restart --no-block digit-reader.service
    for _ in $(seq 1 90); do
        state=$(systemctl show -p ActiveState --value digit-reader.service)
        sub=$(systemctl show -p SubState --value digit-reader.service)
        # Type=notify: active/running only after READY=1 (model loaded, first frame processed).
        if [ "$state" = active ] && [ "$sub" = running ]; then
            sleep 3  # and it stays up
            [ "$(systemctl show -p ActiveState --value digit-reader.service)" = active ] && return 0
        fi
        [ "$state" = failed ] && break
        sleep 1
    done
    return 1
}

step_journal() {  # journal: the service's last log lines
    journalctl -u digit-reader.service -n 8 --no-pager -o cat 2>/dev/null || true
}

step_restart() {  # restart: the service, as it is now
    systemctl restart digit-reader.service
}

step_smoke() {  # smoke PREFIX ETC: without systemd, device-run --once on the demo page inside the wheel
    local venv="$1/current/venv" demo expected out got
    demo=$("$venv/bin/python" -c 'from importlib.resources import files; print(files("device") / "demo")')
    expected=$(cat "$demo/page.txt")
    out=$("$venv/bin/device-run" --source "$demo/page.jpg" --once --json --config "$2/config.toml") || return 1
    got=$(printf '%s' "$out" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["text"])')
    echo "  read '$got' (expected '$expected')"
    [ "$got" = "$expected" ]
}

step_remove() {  # remove RELEASE_DIR: a release that never became (or is no longer) current
    rm -rf "$1"
}

step_remove_only() {  # remove_only PREFIX RELEASE_DIR: the first release failed; nothing to go back to
    rm -f "$1/current"
    rm -rf "$2"
    systemctl stop digit-reader.service 2>/dev/null || true
}

step_prune() {  # prune PREFIX RELEASE PREVIOUS KEEP: keep the last KEEP releases, always current and previous
    local old
    cd "$1/releases"
    find . -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | head -n "-$4" | while read -r old; do
        [ "$old" = "$2" ] || [ "$old" = "$3" ] || { rm -rf "$old"; echo "  removed $old"; }
    done
}

main() {
    local step=$1
    shift
    case "$step" in
        lock) step_lock "$@" ;;
        unlock) step_unlock "$@" ;;
        apt) step_apt "$@" ;;
        upload) step_upload "$@" ;;
        venv) step_venv "$@" ;;
        config) step_config "$@" ;;
        current) step_current "$@" ;;
        switch) step_switch "$@" ;;
        unit) step_unit "$@" ;;
        ready) step_ready "$@" ;;
        journal) step_journal "$@" ;;
        restart) step_restart "$@" ;;
        smoke) step_smoke "$@" ;;
        remove) step_remove "$@" ;;
        remove_only) step_remove_only "$@" ;;
        prune) step_prune "$@" ;;
        *) echo "deploy-remote.sh: unknown step $step" >&2; return 2 ;;
    esac
}

main "$@"; exit $?

#!/usr/bin/env bash
# Remote scripts are built here on purpose: expanding on the client side (SC2029) and single-quoted remote
# code (SC2016) are what is meant.
# shellcheck disable=SC2029,SC2016
# Deploy digit-reader to one or more Raspberry Pis (or any 64-bit Debian-based host) over SSH.
#
#   scripts/deploy.sh [options] [user@]host[:port] [more hosts...]
#
# Each host gets a new release in PREFIX/releases/<release> with its own venv (system site packages, so
# the apt numpy/OpenCV/picamera2 are used and numpy is never upgraded), PREFIX/current is switched to it
# atomically, the systemd service is restarted and must come up READY; otherwise the previous release is
# switched back and restarted. The last 3 releases are kept. Hosts are deployed in parallel.
#
# Prerequisite: key-based SSH login, and passwordless sudo for a non-root user.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/deploy.sh [options] [user@]host[:port] [more hosts...]

  --dry-run          print every remote step instead of running it
  --port N           SSH port for hosts that do not name one (default 22)
  --identity FILE    SSH private key
  --known-hosts FILE known-hosts file (default: ssh's own); new hosts are accepted on first contact
  --prefix DIR       install prefix on the host (default /opt/digit-reader)
  --etc DIR          configuration folder on the host (default /etc/digit-reader)
  --no-apt           do not install system packages
  --no-restart       install and switch, but do not restart the service
  --no-systemd       host without systemd as PID 1 (e.g. a container): no unit, no systemctl; the health
                     check is a run of device-run --once on the bundled demo page
  -h, --help         this help
EOF
}

PREFIX=/opt/digit-reader
ETC=/etc/digit-reader
PORT=22
IDENTITY=""
KNOWN_HOSTS=""
DRY_RUN=0
APT=1
RESTART=1
SYSTEMD=1
HOSTS=()
KEEP=3
LOCK_STALE=1800  # seconds after which another deploy's lock counts as left behind by a dead deploy

die() { echo "deploy.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --port) [ $# -ge 2 ] || die "--port needs a number"; PORT=$2; shift ;;
        --identity) [ $# -ge 2 ] || die "--identity needs a file"; IDENTITY=$2; shift ;;
        --known-hosts) [ $# -ge 2 ] || die "--known-hosts needs a file"; KNOWN_HOSTS=$2; shift ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; PREFIX=$2; shift ;;
        --etc) [ $# -ge 2 ] || die "--etc needs a folder"; ETC=$2; shift ;;
        --no-apt) APT=0 ;;
        --no-restart) RESTART=0 ;;
        --no-systemd) SYSTEMD=0 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option $1" ;;
        *)  # the same host twice would race against itself
            if [[ " ${HOSTS[*]} " == *" $1 "* ]]; then echo "note: $1 given twice, deploying it once" >&2
            else HOSTS+=("$1"); fi ;;
    esac
    shift
done
[ ${#HOSTS[@]} -gt 0 ] || { usage >&2; die "no host given"; }
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port $PORT: must be a number"
[[ "$PREFIX" == /* ]] || die "--prefix $PREFIX: must be an absolute path"
[[ "$ETC" == /* ]] || die "--etc $ETC: must be an absolute path"
[ -z "$IDENTITY" ] || [ -r "$IDENTITY" ] || die "--identity $IDENTITY: not a readable file"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1)
SHA=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)
if [ "$SHA" != nogit ] && [ -n "$(git -C "$ROOT" status --porcelain -- device models systemd pyproject.toml 2>/dev/null)" ]; then
    SHA="$SHA-dirty"
fi
RELEASE="$(date -u +%Y%m%d-%H%M%S)-v$VERSION-$SHA"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PAYLOAD="$WORK/payload.tar.gz"
# Only what the Pi needs: the device package, the model and its card, the unit and config, the metadata.
mapfile -t MODEL_FILES < <(cd "$ROOT" && ls models/*.tflite models/*.json)
tar -C "$ROOT" -czf "$PAYLOAD" --exclude=__pycache__ --exclude='*.pyc' \
    device systemd pyproject.toml README.md "${MODEL_FILES[@]}"

# ---------------------------------------------------------------------------------------------------------

deploy_host() {  # deploy_host SPEC RESULT_FILE
    local spec=$1 result_file=$2 started=$SECONDS
    local target=${spec%:*} port=$PORT
    if [[ "$spec" == *:* ]]; then port=${spec##*:}; else target=$spec; fi
    [[ "$port" =~ ^[0-9]+$ ]] || { echo "failed|bad port in $spec" > "$result_file"; echo "error: bad port in $spec"; return 1; }

    local ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ConnectTimeout=10
                    -o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o LogLevel=ERROR
                    -o ControlMaster=auto -o "ControlPath=$WORK/cm-%C" -o ControlPersist=120 -p "$port")
    [ -n "$IDENTITY" ] && ssh_opts+=(-i "$IDENTITY" -o IdentitiesOnly=yes)
    [ -n "$KNOWN_HOSTS" ] && ssh_opts+=(-o "UserKnownHostsFile=$KNOWN_HOSTS")

    local sudo="" locked=0 interrupted=0
    # Ctrl-C (the main script turns it into SIGTERM for each host): the step in flight finishes, no further
    # step starts, and the clean-up of the steps done runs (remove the new release, switch back), so the host
    # is left as it was. Killing the step in flight instead could leave its remote half running: an ssh
    # session without a terminal gets no hang-up signal.
    trap 'interrupted=1; echo "- interrupted: finishing this step, then cleaning up"' TERM
    unlock() {  # give the host's deploy lock back (quietly; a stale lock is taken over later anyway)
        [ "$locked" -eq 1 ] || return 0
        ssh "${ssh_opts[@]}" "$target" "${sudo:+$sudo }rm -rf '$PREFIX/.deploy.lock'" >/dev/null 2>&1 || true
        locked=0
    }
    fail() {  # fail MESSAGE: one line for this host, recorded for the summary
        unlock
        local why=$1
        [ "$interrupted" -eq 0 ] || [[ "$why" == interrupted* ]] || why="interrupted; $why"
        echo "error: $why"
        echo "failed|$why" > "$result_file"
        ssh "${ssh_opts[@]}" -O exit "$target" >/dev/null 2>&1 || true
        return 1
    }
    remote() {  # remote DESCRIPTION SCRIPT [stdin file]: a step forward; none starts once interrupted
        [ "$interrupted" -eq 0 ] || return 1
        run_remote "$@"
    }
    run_remote() {  # run_remote DESCRIPTION SCRIPT [stdin file]: a bash script on the host (root via sudo)
        local description=$1 script=$2 input=${3:-/dev/null}
        if [ "$DRY_RUN" -eq 1 ]; then
            printf -- '--- %s (ssh -p %s %s %sbash -s)\n%s\n' "$description" "$port" "$target" "${sudo:+$sudo }" "$script"
            return 0
        fi
        echo "- $description"
        if [ "$input" = /dev/null ]; then
            ssh "${ssh_opts[@]}" "$target" "${sudo:+$sudo }bash -s" <<<"set -euo pipefail; $script"
        else
            ssh "${ssh_opts[@]}" "$target" "${sudo:+$sudo }bash -c $(printf %q "set -euo pipefail; $script")" <"$input"
        fi
    }

    # 1. Reachable, authenticated, supported?
    local facts
    if [ "$DRY_RUN" -eq 1 ]; then
        # Nothing is observed in a dry run: say what would be checked, and assume the checks pass. The user is
        # root only when the target names root; anyone else would run every step through sudo -n.
        local user=${target%@*} dry_uid=1000
        [[ "$target" == *@* ]] || user=${USER:-$(id -un)}
        [ "$user" = root ] && dry_uid=0
        echo "--- would connect (ssh -p $port $target sh -s) and check: a 64-bit aarch64 or x86_64 Debian-based OS"
        echo "    (Bookworm or Trixie tested), root or passwordless sudo, python3$( [ "$SYSTEMD" -eq 1 ] && echo ", systemd as PID 1")"
        facts="arch=aarch64 bits=64 id=debian like= codename=bookworm uid=$dry_uid sudo=yes systemd=yes python=3"
    else
        echo "- connect to $target port $port"
        local err="$WORK/ssh-err-$$-$RANDOM"
        if ! facts=$(ssh "${ssh_opts[@]}" "$target" 'sh -s' 2>"$err" <<'EOF'
. /etc/os-release 2>/dev/null || true
printf 'arch=%s bits=%s id=%s like=%s codename=%s uid=%s ' "$(uname -m)" "$(getconf LONG_BIT)" "${ID:-unknown}" \
    "$(echo "${ID_LIKE:-}" | tr ' ' ,)" "${VERSION_CODENAME:-unknown}" "$(id -u)"
if [ "$(id -u)" = 0 ]; then printf 'sudo=yes '; elif sudo -n true 2>/dev/null; then printf 'sudo=yes ';
elif command -v sudo >/dev/null; then printf 'sudo=password '; else printf 'sudo=missing '; fi
if [ -d /run/systemd/system ]; then printf 'systemd=yes '; else printf 'systemd=no '; fi
python3 -c 'import sys; print("python=%d.%d" % sys.version_info[:2])' 2>/dev/null || echo python=none
EOF
        ); then
            local why
            why=$(tr '\n' ' ' <"$err")
            case "$why" in
                *"Permission denied"*|*"Too many authentication failures"*)
                    fail "authentication failed (key-based SSH login required: ssh-copy-id -p $port $target)" ;;
                *"REMOTE HOST IDENTIFICATION HAS CHANGED"*|*"Host key verification failed"*)
                    fail "host key changed since the last deploy (check the host, then ssh-keygen -R it)" ;;
                *) fail "unreachable (${why:-ssh exited with an error})" ;;
            esac
            return 1
        fi
    fi
    local arch bits id like codename uid sudo_state systemd python
    for kv in $facts; do
        case "$kv" in
            arch=*) arch=${kv#arch=} ;; bits=*) bits=${kv#bits=} ;; id=*) id=${kv#id=} ;;
            like=*) like=${kv#like=} ;; codename=*) codename=${kv#codename=} ;; uid=*) uid=${kv#uid=} ;;
            sudo=*) sudo_state=${kv#sudo=} ;; systemd=*) systemd=${kv#systemd=} ;; python=*) python=${kv#python=} ;;
        esac
    done
    if [ "$bits" != 64 ] || [[ "$arch" == armv* ]] || [[ "$arch" == i?86 ]]; then
        fail "unsupported: 32-bit OS ($arch); install 64-bit Raspberry Pi OS (Bookworm or Trixie)"; return 1
    fi
    if [ "$arch" != aarch64 ] && [ "$arch" != x86_64 ]; then
        fail "unsupported architecture $arch (aarch64 or x86_64 needed)"; return 1
    fi
    if [ "$id" != debian ] && [ "$id" != raspbian ] && [[ ",$like," != *,debian,* ]]; then
        fail "unsupported OS $id (Debian-based needed: Raspberry Pi OS, Debian)"; return 1
    fi
    case "$codename" in bookworm|trixie) ;; *) echo "warning: $id $codename is not tested (Bookworm or Trixie are)" ;; esac
    if [ "$uid" != 0 ]; then
        case "$sudo_state" in
            yes) sudo="sudo -n" ;;
            password) fail "sudo needs a password for this user; allow passwordless sudo (NOPASSWD) for deploys"; return 1 ;;
            *) fail "sudo is missing and the user is not root"; return 1 ;;
        esac
    fi
    if [ "$SYSTEMD" -eq 1 ] && [ "$systemd" != yes ]; then
        fail "systemd is not running as PID 1 on this host; use --no-systemd"; return 1
    fi
    [ "$DRY_RUN" -eq 1 ] || echo "  $id $codename $arch, python $python${sudo:+, via sudo}"

    # 2. One deploy at a time per host: two would share the release folder, the venv and the switch.
    local rc=0
    remote "lock $PREFIX/.deploy.lock" "
mkdir -p '$PREFIX'
if ! mkdir '$PREFIX/.deploy.lock' 2>/dev/null; then
    age=\$(( \$(date +%s) - \$(stat -c %Y '$PREFIX/.deploy.lock' 2>/dev/null || date +%s) ))
    if [ \$age -lt $LOCK_STALE ]; then
        echo \"  held by \$(cat '$PREFIX/.deploy.lock/owner' 2>/dev/null || echo '?'), \$age s ago\"; exit 3
    fi
    echo \"  taking over a lock left \$age s ago by \$(cat '$PREFIX/.deploy.lock/owner' 2>/dev/null || echo '?')\"
fi
echo '$RELEASE from $(hostname)' > '$PREFIX/.deploy.lock/owner'
touch '$PREFIX/.deploy.lock'" || rc=$?
    case $rc in
        0) [ "$DRY_RUN" -eq 1 ] || locked=1 ;;
        3) fail "another deploy is running on this host (lock $PREFIX/.deploy.lock; remove it if that deploy died)"
           return 1 ;;
        *) fail "taking the deploy lock $PREFIX/.deploy.lock failed"; return 1 ;;
    esac

    # 3. System packages.
    if [ "$APT" -eq 1 ]; then
        remote "apt: python3-venv, numpy, OpenCV, picamera2, lgpio" '
wanted="python3-venv python3-pip python3-numpy python3-opencv python3-picamera2 python3-lgpio python3-paho-mqtt"
missing=""
for p in $wanted; do
    dpkg-query -W -f="\${Status}" "$p" 2>/dev/null | grep -q "install ok installed" && continue
    missing="$missing $p"
done
[ -z "$missing" ] && { echo "  all installed"; exit 0; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
install=""
for p in $missing; do
    # picamera2 and lgpio exist only in the Raspberry Pi archive; skip what this archive lacks.
    if apt-cache show "$p" >/dev/null 2>&1; then install="$install $p"; else echo "  $p: not in this archive, skipped"; fi
done
[ -z "$install" ] || apt-get install -y -q --no-install-recommends $install >/dev/null
echo "  installed:$install"' || { fail "apt failed"; return 1; }
    fi

    # 4. Upload the release.
    local rel_dir="$PREFIX/releases/$RELEASE"
    abandon() {  # abandon MESSAGE: remove the new release (not current yet) and fail
        run_remote "remove the unfinished release" "rm -rf '$rel_dir'" || true
        if [ "$interrupted" -eq 1 ]; then fail "interrupted; the unfinished release was removed"; else fail "$1"; fi
    }
    remote "upload release $RELEASE" "mkdir -p '$rel_dir' && tar -xzf - -C '$rel_dir' --no-same-owner" "$PAYLOAD" \
        || { abandon "upload failed"; return 1; }

    # 5. Its venv: system site packages (apt numpy/OpenCV/picamera2), numpy pinned to the system one.
    remote "venv with ai-edge-litert (numpy left as installed)" "
cd '$rel_dir'
python3 -m venv --system-site-packages venv
venv/bin/python -c 'import numpy' 2>/dev/null || venv/bin/pip install -q 'numpy<2'
venv/bin/python -c 'import numpy; print(\"numpy==\" + numpy.__version__)' > constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip() { venv/bin/pip \"\$@\" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
if ! pip install -q -c constraints.txt ai-edge-litert gpiozero; then
    echo '  ai-edge-litert not installable here; falling back to tflite-runtime'
    pip install -q -c constraints.txt tflite-runtime gpiozero
fi
venv/bin/python -c 'import cv2' 2>/dev/null || pip install -q -c constraints.txt opencv-python-headless
venv/bin/python -c 'import paho.mqtt' 2>/dev/null || pip install -q -c constraints.txt paho-mqtt  # output mqtt
# Editable: the release folder is the package, so its models/ and device/demo/ are found beside it.
pip install -q --no-deps -e .
venv/bin/device-run --check-config systemd/config.toml >/dev/null
echo \"  \$(cat constraints.txt), \$(venv/bin/python -c 'import cv2; print(\"OpenCV \" + cv2.__version__)')\"" \
        || { abandon "installing the venv failed"; return 1; }

    # 6. Configuration: never overwrite the user's.
    # Written beside and renamed into place, so a lost connection never leaves half a config file.
    # It may hold the web token: mode 0640, root:digit-reader (the service's group reads it, nobody else).
    remote "configuration in $ETC" "
mkdir -p '$ETC'
owner=()
if [ \"\$(id -u)\" = 0 ]; then
    getent group digit-reader >/dev/null || groupadd --system digit-reader
    owner=(-o root -g digit-reader)
fi
put() { install -m 0640 \"\${owner[@]}\" '$rel_dir/systemd/config.toml' '$ETC/.config.toml.tmp' && mv '$ETC/.config.toml.tmp' \"\$1\"; }
if [ -e '$ETC/config.toml' ]; then  # an older deploy installed it world-readable
    chmod 0640 '$ETC/config.toml'
    [ \${#owner[@]} -eq 0 ] || chown root:digit-reader '$ETC/config.toml'
fi
if [ ! -e '$ETC/config.toml' ]; then
    put '$ETC/config.toml'; echo '  installed $ETC/config.toml'
elif ! cmp -s '$rel_dir/systemd/config.toml' '$ETC/config.toml'; then
    put '$ETC/config.toml.new'
    echo '  NOTE: kept your $ETC/config.toml; the new default is $ETC/config.toml.new (diff them)'
fi" || { abandon "writing the configuration failed"; return 1; }

    # 7. Switch current atomically (rename of a new symlink over the old one), remembering the previous.
    local previous=""
    if [ "$DRY_RUN" -eq 0 ]; then
        previous=$(ssh "${ssh_opts[@]}" "$target" "readlink '$PREFIX/current' 2>/dev/null || true")
        previous=${previous#releases/}
    fi
    switch_to() {  # switch_to RELEASE (the rename is atomic: current is the old or the new one, never neither)
        run_remote "switch $PREFIX/current to $1" "ln -sfn 'releases/$1' '$PREFIX/.current.new' && mv -T '$PREFIX/.current.new' '$PREFIX/current'"
    }
    # shellcheck disable=SC2015  # not interrupted and switched, or else abandon: both failures abandon
    [ "$interrupted" -eq 0 ] && switch_to "$RELEASE" || { abandon "switching the release failed"; return 1; }

    # 8. Service and health check; from here on a failure switches back.
    local healthy=1 reason="health check failed"
    if [ "$SYSTEMD" -eq 1 ]; then
        remote "system user, unit, enable" "
getent group gpio >/dev/null || groupadd --system gpio
getent group video >/dev/null || groupadd --system video
getent group digit-reader >/dev/null || groupadd --system digit-reader
id digit-reader >/dev/null 2>&1 || useradd --system --home-dir /var/lib/digit-reader --no-create-home \
    --gid digit-reader --shell /usr/sbin/nologin --groups video,gpio digit-reader
usermod -aG video,gpio digit-reader
sed 's#@PREFIX@#$PREFIX#g' '$rel_dir/systemd/digit-reader.service' > /etc/systemd/system/digit-reader.service.new
sed -i 's#/etc/digit-reader/#$ETC/#g' /etc/systemd/system/digit-reader.service.new
mv /etc/systemd/system/digit-reader.service.new /etc/systemd/system/digit-reader.service
systemctl daemon-reload
systemctl enable digit-reader.service >/dev/null 2>&1" || { healthy=0; reason="installing the unit failed"; }
        if [ "$RESTART" -eq 1 ] && [ "$healthy" -eq 1 ]; then
            health_systemd() {
                remote "restart and wait for READY" "
systemctl reset-failed digit-reader.service 2>/dev/null || true
systemctl restart --no-block digit-reader.service
for i in \$(seq 1 90); do
    state=\$(systemctl show -p ActiveState --value digit-reader.service)
    sub=\$(systemctl show -p SubState --value digit-reader.service)
    # Type=notify: active/running only after READY=1 (model loaded, first frame processed).
    if [ \"\$state\" = active ] && [ \"\$sub\" = running ]; then
        sleep 3  # and it stays up
        [ \"\$(systemctl show -p ActiveState --value digit-reader.service)\" = active ] && exit 0
    fi
    [ \"\$state\" = failed ] && break
    sleep 1
done
exit 1"
            }
            health_systemd || healthy=0
            run_remote "last log lines" "journalctl -u digit-reader.service -n 8 --no-pager -o cat 2>/dev/null || true" || true
        fi
    else
        health_smoke() {
            remote "health check: device-run --once on the bundled demo page" "
cd '$PREFIX/current'
expected=\$(cat device/demo/page.txt)
out=\$(venv/bin/device-run --source device/demo/page.jpg --once --json --config '$ETC/config.toml') || exit 1
got=\$(printf '%s' \"\$out\" | venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[\"text\"])')
echo \"  read '\$got' (expected '\$expected')\"
[ \"\$got\" = \"\$expected\" ]"
        }
        health_smoke || healthy=0
    fi

    [ "$interrupted" -eq 0 ] || { healthy=0; reason="interrupted"; }
    if [ "$healthy" -eq 0 ]; then
        if [ -n "$previous" ] && [ "$previous" != "$RELEASE" ]; then
            switch_to "$previous" || true
            if [ "$SYSTEMD" -eq 1 ] && [ "$RESTART" -eq 1 ]; then
                run_remote "restart the previous release" "systemctl restart digit-reader.service" || true
            fi
            run_remote "remove the failed release" "rm -rf '$rel_dir'" || true
            fail "$reason; rolled back to $previous"
        else
            run_remote "remove the failed release (there is no previous one)" \
                "rm -f '$PREFIX/current'; rm -rf '$rel_dir'; systemctl stop digit-reader.service 2>/dev/null || true" || true
            fail "$reason; no previous release to roll back to"
        fi
        return 1
    fi

    # 9. Keep the last releases (and always the current and the previous one).
    remote "keep the last $KEEP releases" "
cd '$PREFIX/releases'
ls -1 | sort | head -n -$KEEP | while read -r old; do
    [ \"\$old\" = '$RELEASE' ] || [ \"\$old\" = '$previous' ] || { rm -rf \"\$old\"; echo \"  removed \$old\"; }
done" || true

    unlock
    ssh "${ssh_opts[@]}" -O exit "$target" >/dev/null 2>&1 || true
    local note="ok"
    [ "$RESTART" -eq 0 ] && [ "$SYSTEMD" -eq 1 ] && note="ok (not restarted)"
    [ "$DRY_RUN" -eq 1 ] && note="dry run"
    echo "$note|$RELEASE|$((SECONDS - started))" > "$result_file"
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "dry run: nothing was run on $target; a deploy would run the steps above${sudo:+ (each through $sudo)}"
    else
        echo "done: $RELEASE is current on $target"
    fi
}

# ---------------------------------------------------------------------------------------------------------

pids=() printers=()
for i in "${!HOSTS[@]}"; do
    # Each host's lines get its name in front, through a FIFO so that $! is the host's own worker. The
    # printer ignores Ctrl-C, so a host's clean-up messages still get through.
    mkfifo "$WORK/out-$i"
    (trap '' INT TERM; exec sed -u "s|^|[${HOSTS[$i]}] |" < "$WORK/out-$i") &
    printers+=($!)
    { set +e; deploy_host "${HOSTS[$i]}" "$WORK/result-$i"; } > "$WORK/out-$i" 2>&1 &
    pids+=($!)
done
# Ctrl-C or SIGTERM: tell every host to stop after its current step and clean up, and keep waiting for them.
trap 'echo "deploy.sh: interrupted; stopping after the current step on each host" >&2
      kill -TERM "${pids[@]}" 2>/dev/null || true' INT TERM
for pid in "${pids[@]}" "${printers[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
done
trap - INT TERM

failed=0
printf '\n%-32s %-40s %-8s %s\n' HOST RELEASE TIME RESULT
for i in "${!HOSTS[@]}"; do
    result=$(cat "$WORK/result-$i" 2>/dev/null || echo "failed|no result")
    status=${result%%|*}
    rest=${result#*|}
    if [[ "$status" == ok* ]] || [ "$status" = "dry run" ]; then
        release=${rest%%|*}
        printf '%-32s %-40s %-8s %s\n' "${HOSTS[$i]}" "$release" "${rest##*|}s" "$status"
    else
        failed=1
        printf '%-32s %-40s %-8s %s\n' "${HOSTS[$i]}" "$RELEASE" "-" "FAILED: $rest"
    fi
done
exit "$failed"

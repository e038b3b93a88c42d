#!/usr/bin/env bash
# Deploy digit-reader to one or more Raspberry Pis (or any 64-bit Debian-based host) over SSH.
#
#   scripts/deploy.sh [options] [user@]host[:port] [more hosts...]
#
# The project's wheel is built here (the model and the demo are package data inside it). Each host gets a
# new release in PREFIX/releases/<release>: the wheel installed into its own venv (system site packages, so
# the apt numpy/OpenCV/picamera2 are used and numpy is never upgraded), PREFIX/current is switched to it
# atomically, the systemd service is restarted and must come up READY; otherwise the previous release is
# switched back and restarted. The last 3 releases are kept. Hosts are deployed in parallel. What runs on a
# host is scripts/deploy-remote.sh, one step per SSH call.
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
  --python FILE      the Python that builds the wheel (default: the project's .venv, else python3)
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
PYTHON=""
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
        --python) [ $# -ge 2 ] || die "--python needs a file"; PYTHON=$2; shift ;;
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

REMOTE="$ROOT/scripts/deploy-remote.sh"
if [ -z "$PYTHON" ]; then
    PYTHON=python3
    [ -x "$ROOT/.venv/bin/python" ] && PYTHON="$ROOT/.venv/bin/python"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PAYLOAD="$WORK/payload.tar.gz"
# What the Pi gets: the wheel (device runtime, model and demo inside; no tests, no tools), the unit and the
# default config. It is built from a clean copy of the sources, so no stale build folder can leak into it.
if [ "$DRY_RUN" -eq 1 ]; then
    echo "--- would build the wheel: $PYTHON -m pip wheel --no-deps --no-build-isolation $ROOT"
else
    mkdir -p "$WORK/src" "$WORK/payload"
    tar -C "$ROOT" -c --exclude=__pycache__ --exclude='*.pyc' pyproject.toml README.md device host | tar -C "$WORK/src" -x
    "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/payload" "$WORK/src" >/dev/null \
        || die "building the wheel failed (with $PYTHON; --python names another, one with pip and setuptools)"
    cp -r "$ROOT/systemd" "$WORK/payload/systemd"
    tar -C "$WORK/payload" -czf "$PAYLOAD" .
fi

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
        on_host unlock "$PREFIX" >/dev/null 2>&1 || true
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
    remote() {  # remote DESCRIPTION STEP [ARG...]: a step forward; none starts once interrupted
        [ "$interrupted" -eq 0 ] || return 1
        run_remote "$@"
    }
    run_remote() {  # run_remote DESCRIPTION STEP [ARG...]: one step of deploy-remote.sh on the host
        local description=$1
        shift
        if [ "$DRY_RUN" -eq 1 ]; then
            printf -- '--- %s (ssh -p %s %s %sbash -s)\n    deploy-remote.sh %s\n' "$description" "$port" "$target" \
                "${sudo:+$sudo }" "$(printf '%q ' "$@")"
            return 0
        fi
        echo "- $description"
        on_host "$@"
    }
    on_host() {  # on_host STEP [ARG...]: deploy-remote.sh on stdin, root via sudo; upload adds the payload
        local extra=/dev/null
        [ "$1" != upload ] || extra=$PAYLOAD
        # shellcheck disable=SC2029  # $sudo is meant to expand here: it is this deploy's choice, not the host's
        { printf 'set -- %s\n' "$(printf '%q ' "$@")"; cat "$REMOTE" "$extra"; } \
            | ssh "${ssh_opts[@]}" "$target" "${sudo:+$sudo }bash -s"
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
    remote "lock $PREFIX/.deploy.lock" lock "$PREFIX" "$RELEASE" "$LOCK_STALE" "$(hostname)" || rc=$?
    case $rc in
        0) [ "$DRY_RUN" -eq 1 ] || locked=1 ;;
        3) fail "another deploy is running on this host (lock $PREFIX/.deploy.lock; remove it if that deploy died)"
           return 1 ;;
        *) fail "taking the deploy lock $PREFIX/.deploy.lock failed"; return 1 ;;
    esac

    # 3. System packages.
    if [ "$APT" -eq 1 ]; then
        remote "apt: python3-venv, numpy, OpenCV, picamera2, lgpio" apt || { fail "apt failed"; return 1; }
    fi

    # 4. Upload the release.
    local rel_dir="$PREFIX/releases/$RELEASE"
    abandon() {  # abandon MESSAGE: remove the new release (not current yet) and fail
        run_remote "remove the unfinished release" remove "$rel_dir" || true
        if [ "$interrupted" -eq 1 ]; then fail "interrupted; the unfinished release was removed"; else fail "$1"; fi
    }
    remote "upload release $RELEASE" upload "$rel_dir" || { abandon "upload failed"; return 1; }

    # 5. Its venv: system site packages (apt numpy/OpenCV/picamera2), numpy pinned to the system one, the wheel.
    remote "venv with ai-edge-litert (numpy left as installed), the wheel" venv "$rel_dir" \
        || { abandon "installing the venv failed"; return 1; }

    # 6. Configuration: never overwrite the user's.
    remote "configuration in $ETC" config "$rel_dir" "$ETC" || { abandon "writing the configuration failed"; return 1; }

    # 7. Switch current atomically (rename of a new symlink over the old one), remembering the previous.
    local previous=""
    if [ "$DRY_RUN" -eq 0 ]; then
        previous=$(on_host current "$PREFIX")
    fi
    switch_to() {  # switch_to RELEASE (the rename is atomic: current is the old or the new one, never neither)
        run_remote "switch $PREFIX/current to $1" switch "$PREFIX" "$1"
    }
    # shellcheck disable=SC2015  # not interrupted and switched, or else abandon: both failures abandon
    [ "$interrupted" -eq 0 ] && switch_to "$RELEASE" || { abandon "switching the release failed"; return 1; }

    # 8. Service and health check; from here on a failure switches back.
    local healthy=1 reason="health check failed"
    if [ "$SYSTEMD" -eq 1 ]; then
        remote "system user, unit, enable" unit "$PREFIX" "$ETC" "$rel_dir" \
            || { healthy=0; reason="installing the unit failed"; }
        if [ "$RESTART" -eq 1 ] && [ "$healthy" -eq 1 ]; then
            remote "restart and wait for READY" ready || healthy=0
            run_remote "last log lines" journal || true
        fi
    else
        remote "health check: device-run --once on the bundled demo page" smoke "$PREFIX" "$ETC" || healthy=0
    fi

    [ "$interrupted" -eq 0 ] || { healthy=0; reason="interrupted"; }
    if [ "$healthy" -eq 0 ]; then
        if [ -n "$previous" ] && [ "$previous" != "$RELEASE" ]; then
            switch_to "$previous" || true
            if [ "$SYSTEMD" -eq 1 ] && [ "$RESTART" -eq 1 ]; then
                run_remote "restart the previous release" restart || true
            fi
            run_remote "remove the failed release" remove "$rel_dir" || true
            fail "$reason; rolled back to $previous"
        else
            run_remote "remove the failed release (there is no previous one)" remove_only "$PREFIX" "$rel_dir" || true
            fail "$reason; no previous release to roll back to"
        fi
        return 1
    fi

    # 9. Keep the last releases (and always the current and the previous one).
    remote "keep the last $KEEP releases" prune "$PREFIX" "$RELEASE" "$previous" "$KEEP" || true

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

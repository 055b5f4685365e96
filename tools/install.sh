#!/usr/bin/env bash
# Install fsqd as a systemd service on a Raspberry Pi (or any Debian-like systemd host).
#
#   sudo tools/install.sh                 install or upgrade, enable and (re)start
#   sudo tools/install.sh --uninstall     stop, disable, remove; keeps /etc/fsqd and /var/lib/fsqd
#   sudo tools/install.sh --uninstall --purge   ... and removes those too
#
# What it does (every step is printed as "+ command"; --dry-run prints without doing):
#   apt-get install python3-venv python3-systemd, those missing (unless --no-apt); apt-get
#   update first when apt knows no version of one (empty lists on a fresh image)
#   a venv at /opt/fsqd with --system-site-packages, so apt's python3-systemd and the
#   Hailo's hailo_platform (from hailo-all) are importable; pip installs this checkout
#   the unit, the udev rule for /dev/hailo0, sysusers.d and tmpfiles.d entries, applied
#   the default config to /etc/fsqd/fsqd.toml if there is none
#   fsqd check-config /etc/fsqd/fsqd.toml; only if it passes: enable and (re)start.
# Running it again is safe: it upgrades fsqd and leaves an existing config alone.
#
# In an image builder's chroot (systemd not PID 1, no udevd) it installs and enables the
# same way but skips the live steps, as Debian's maintainer scripts do: daemon-reload and
# restart when /run/systemd/system is absent, the udev reload/trigger when udevd's socket
# /run/udev/control is. The service starts at first boot.
#
# --root DIR stages everything under DIR instead of the live system: no apt, no udevadm,
# and systemctl/systemd-sysusers/systemd-tmpfiles run offline with --root=DIR. A venv
# staged this way only works from DIR (its scripts name DIR), so it is for packaging
# and tests; --skip-venv leaves it out.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/install.sh [--uninstall [--purge]] [options]
  --root DIR       stage under DIR (offline; see the header of this script)
  --dry-run        print every step, change nothing
  --prefix DIR     where the venv goes (default /opt/fsqd)
  --config FILE    default config to install when /etc/fsqd/fsqd.toml is absent
                   (default: configs/fsqd.toml in this checkout)
  --fsqd CMD       command that runs fsqd for check-config (default: PREFIX/bin/fsqd)
  --skip-venv      do not create the venv or pip install (fsqd is already there)
  --no-apt         do not apt-get install python3-venv python3-systemd
                   (by default only the missing ones are installed; --dry-run lists them)
  --no-start       enable the service but do not (re)start it
  --uninstall      stop, disable and remove fsqd (config and state are kept)
  --purge          with --uninstall: also remove /etc/fsqd and /var/lib/fsqd
EOF
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=""
dry_run=0
prefix=/opt/fsqd
config=""
fsqd_cmd=""
skip_venv=0
no_apt=0
no_start=0
uninstall=0
purge=0

while (($#)); do
    case $1 in
    --root) root=${2:?--root needs a directory}; shift ;;
    --dry-run) dry_run=1 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --config) config=${2:?--config needs a file}; shift ;;
    --fsqd) fsqd_cmd=${2:?--fsqd needs a command}; shift ;;
    --skip-venv) skip_venv=1 ;;
    --no-apt) no_apt=1 ;;
    --no-start) no_start=1 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

[[ $prefix == /* && $prefix != / ]] || die "--prefix must be an absolute path other than /"
if [[ -n $root ]]; then
    [[ -d $root ]] || die "--root $root: no such directory"
    root=$(cd "$root" && pwd)
    [[ $root != / ]] || die "--root / is the live system: leave --root out"
fi
((purge == 0 || uninstall == 1)) || die "--purge only goes with --uninstall"
if [[ -z $root ]] && ((dry_run == 0)) && ((EUID != 0)); then
    die "run as root (sudo), or use --root DIR / --dry-run"
fi

# Print a step, then run it unless this is a dry run.
run() {
    printf '+ %s\n' "$*"
    ((dry_run)) || "$@"
}

live() { [[ -z $root ]]; }

# systemd is the running init: the test of sd_booted() and deb-systemd-invoke. Not so in
# an image builder's chroot or a container without systemd, where reloads would fail.
systemd_running() { [[ -d /run/systemd/system ]]; }
# udevd listens on this socket; `udevadm control` fails without it.
udevd_running() { [[ -S /run/udev/control ]]; }

# What fsqd needs from apt, and why nothing else:
#   python3-venv     Debian keeps venv's ensurepip out of python3; without it `python3 -m
#                    venv` fails (Raspberry Pi OS Lite has it, Debian's minimal images not)
#   python3-systemd  journal entries through libsystemd (fsqd falls back to the journal's
#                    native protocol without it)
# Not python3-pip (the venv brings its own pip), not i2c-tools (`fsqd probe` finds and checks
# the IMUs itself), never a compiler or python3-dev: every dependency installs from a wheel.
apt_packages() {
    ((skip_venv)) || echo python3-venv
    echo python3-systemd
}

deb_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# apt has a version of $1 to install; not so with empty lists (a fresh image or chroot).
apt_knows() {
    local policy
    policy=$(apt-cache policy "$1" 2>/dev/null) || return 1
    [[ $policy == *"Candidate: "[!\(]* ]]
}

install_apt_packages() {
    local -a want present=() missing=()
    local pkg
    mapfile -t want < <(apt_packages)
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install.sh: no apt-get here: install ${want[*]} (or their equivalents) yourself"
        return 0
    fi
    for pkg in "${want[@]}"; do
        if deb_installed "$pkg"; then present+=("$pkg"); else missing+=("$pkg"); fi
    done
    echo "install.sh: apt packages: to install: ${missing[*]:-none}; already installed: ${present[*]:-none}"
    ((${#missing[@]})) || return 0
    for pkg in "${missing[@]}"; do
        if ! apt_knows "$pkg"; then
            run apt-get update
            break
        fi
    done
    run apt-get install -y "${missing[@]}"
}

# Offline variants of the systemd tools when staging.
systemctl_() { if live; then run systemctl "$@"; else run systemctl --root="$root" "$@"; fi; }
rootopt=()
live || rootopt=(--root="$root")

unit_path=$root/etc/systemd/system/fsqd.service
udev_path=$root/etc/udev/rules.d/99-hailo.rules
sysusers_path=$root/etc/sysusers.d/fsqd.conf
tmpfiles_path=$root/etc/tmpfiles.d/fsqd.conf
venv=$root$prefix

do_uninstall() {
    if live && systemd_running; then
        if systemctl cat fsqd.service >/dev/null 2>&1; then
            run systemctl disable --now fsqd.service
        fi
    elif live; then
        echo "install.sh: systemd is not running here (no /run/systemd/system): nothing to stop; skipping daemon-reload"
        if [[ -e $unit_path ]]; then run systemctl disable fsqd.service; fi
    elif [[ -e $unit_path ]]; then
        systemctl_ disable fsqd.service
    fi
    run rm -f "$unit_path" "$udev_path" "$sysusers_path" "$tmpfiles_path"
    if [[ -e $venv ]]; then
        # Only ever delete something that is a venv: a wrong --prefix must not cost data.
        [[ -f $venv/pyvenv.cfg ]] || die "$venv is not a venv (no pyvenv.cfg): not removing it"
        run rm -rf "$venv"
    fi
    if live && systemd_running; then
        run systemctl daemon-reload
    fi
    if live && udevd_running; then
        run udevadm control --reload-rules
    elif live; then
        echo "install.sh: udevd is not running here (no /run/udev/control): skipping the udev reload"
    fi
    if ((purge)); then
        run rm -rf "$root/etc/fsqd" "$root/var/lib/fsqd"
        echo "install.sh: purged; the fsqd user and the i2c/hailo groups remain (userdel fsqd)"
    else
        echo "install.sh: removed; kept $root/etc/fsqd and $root/var/lib/fsqd (--purge removes them)"
    fi
}

do_install() {
    [[ -f $src/pyproject.toml && -f $src/systemd/fsqd.service ]] ||
        die "$src does not look like an fsqd checkout"
    [[ -n $config ]] || config=$src/configs/fsqd.toml

    if live && ((no_apt == 0)); then
        install_apt_packages
    fi

    if ((skip_venv == 0)); then
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "python3 is older than 3.11"
        # --system-site-packages: apt's python3-systemd and hailo_platform (hailo-all).
        run python3 -m venv --system-site-packages "$venv"
        run "$venv/bin/pip" install --upgrade --quiet "$src"
    fi

    run install -D -m 0644 "$src/systemd/fsqd.service" "$unit_path"
    run install -D -m 0644 "$src/systemd/99-hailo.rules" "$udev_path"
    run install -D -m 0644 "$src/systemd/fsqd.sysusers" "$sysusers_path"
    run install -D -m 0644 "$src/systemd/fsqd.tmpfiles" "$tmpfiles_path"
    run systemd-sysusers "${rootopt[@]}" fsqd.conf
    run systemd-tmpfiles "${rootopt[@]}" --create fsqd.conf

    local cfg=$root/etc/fsqd/fsqd.toml
    if [[ -e $cfg ]]; then
        echo "install.sh: keeping the existing $cfg"
    else
        [[ -f $config ]] || ((dry_run)) ||
            die "no default config at $config (give one with --config FILE)"
        run install -D -m 0644 "$config" "$cfg"
    fi

    check_config "$cfg"

    if live && udevd_running; then
        run udevadm control --reload-rules
        run udevadm trigger --action=add --subsystem-match=hailo_chardev
    elif live; then
        echo "install.sh: udevd is not running here (no /run/udev/control): skipping the udev reload and trigger; the rule applies at boot"
    fi
    if live && systemd_running; then
        run systemctl daemon-reload
    fi
    systemctl_ enable fsqd.service
    if live && ! systemd_running; then
        echo "install.sh: systemd is not running here (no /run/systemd/system): skipped daemon-reload and restart; fsqd.service is enabled and starts at boot"
    fi
    if live && systemd_running && ((no_start == 0)); then
        run systemctl restart fsqd.service
        ((dry_run)) || echo "install.sh: fsqd is running; follow it with: journalctl -u fsqd -f"
    fi
}

# The config is checked as the service will read it: a password credential is handed
# over the way LoadCredential= does, in $CREDENTIALS_DIRECTORY, and the state directory
# the way StateDirectory= does, in $STATE_DIRECTORY (check-config creates it if missing,
# as fsqd run would; systemd gives it to the fsqd user and mode 0750 when it starts).
check_config() {
    local cfg=$1 creds
    local -a cmd
    if [[ -n $fsqd_cmd ]]; then
        read -r -a cmd <<<"$fsqd_cmd"
    else
        cmd=("$venv/bin/fsqd")
    fi
    if ((dry_run)); then
        printf '+ %s\n' "${cmd[*]} check-config $cfg"
        return 0
    fi
    creds=$(mktemp -d)
    # shellcheck disable=SC2064  # expand now: the directory is local to this call
    trap "rm -rf '$creds'" RETURN
    if [[ -r $root/etc/fsqd/mqtt-password ]]; then
        install -m 0600 "$root/etc/fsqd/mqtt-password" "$creds/mqtt-password"
    fi
    printf '+ %s\n' "${cmd[*]} check-config $cfg"
    if ! CREDENTIALS_DIRECTORY=$creds STATE_DIRECTORY=$root/var/lib/fsqd \
        "${cmd[@]}" check-config "$cfg"; then
        die "check-config failed: fix $cfg, then run install.sh again (the service was not enabled)"
    fi
}

if ((uninstall)); then
    do_uninstall
else
    do_install
fi

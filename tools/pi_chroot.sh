#!/usr/bin/env bash
# Run fsqd's README demo and tools/install.sh on an approximation of a fresh Raspberry Pi
# OS Lite (bookworm, arm64) with no compiler: a Debian bookworm arm64 chroot built by
# debootstrap and run through qemu-user. Slow (everything ARM is emulated); not run by CI.
# See docs/raspberry-pi.md.
#
#   sudo tools/pi_chroot.sh                     build if needed, mount, test, unmount
#   sudo tools/pi_chroot.sh --duration 20s      ... with a shorter demo
#   sudo tools/pi_chroot.sh --tests all         ... and the whole test suite (hours under qemu)
#   sudo tools/pi_chroot.sh shell               a root shell inside (mounted), unmounted after
#   sudo tools/pi_chroot.sh umount              unmount whatever is still mounted
#
# Needs on the host (Debian/Ubuntu x86): apt install qemu-user-static binfmt-support debootstrap
set -euo pipefail

usage() {
    cat <<'EOF'
usage: sudo tools/pi_chroot.sh [options] [test | shell | umount]
  --dir DIR        the chroot (default /var/tmp/fsqd-pi-chroot); kept between runs, unmounted
  --repo DIR       the git repository to clone inside (default: this checkout)
  --branch NAME    the branch to clone (default: the checkout's current branch)
  --duration D     the demo's --duration (default: the README's)
  --tests ARGS     what the README's test command runs pytest on (default: a few modules
                   that need the test extra's packages; "all": the whole suite, hours)
  --rebuild        delete the chroot and debootstrap it again
  --mirror URL     Debian mirror for debootstrap (default http://deb.debian.org/debian)
EOF
}

die() {
    echo "pi_chroot.sh: $*" >&2
    exit 1
}

say() { printf '\n=== %s\n' "$*"; }

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=/var/tmp/fsqd-pi-chroot
repo=$src
branch=""
duration=""
# The whole suite takes hours under qemu: by default the README's test command runs on the
# modules that use what only the test extra brings (the independent chip drivers, the
# hdrhistogram package where it installs) and a few driver and self-test modules.
tests="tests/test_hdrhistogram.py tests/test_st_adafruit.py tests/test_invensense_independent.py
tests/test_invensense_selftest.py tests/test_lsm6dsox_startup.py tests/test_emulated_akm.py"
tests=${tests//$'\n'/ }
rebuild=0
mirror=http://deb.debian.org/debian
action="test"

while (($#)); do
    case $1 in
    --dir) dir=${2:?--dir needs a directory}; shift ;;
    --repo) repo=${2:?--repo needs a directory}; shift ;;
    --branch) branch=${2:?--branch needs a name}; shift ;;
    --duration) duration=${2:?--duration needs a value like 20s}; shift ;;
    --tests) tests=${2:?--tests needs pytest arguments or "all"}; shift ;;
    --rebuild) rebuild=1 ;;
    --mirror) mirror=${2:?--mirror needs a URL}; shift ;;
    test | shell | umount) action=$1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

((EUID == 0)) || die "run as root (debootstrap, chroot and mount need it)"
[[ $dir == /* && $dir != / ]] || die "--dir must be an absolute path other than /"
[[ -n $branch ]] || branch=$(git -C "$repo" rev-parse --abbrev-ref HEAD)

# Raspberry Pi OS Lite bookworm arm64 is pi-gen's stages 0-2 (branch bookworm-arm64). These
# are the packages of those lists that Debian has and that shape a Python install; left out:
# the Raspberry Pi archive's own packages (kernel, firmware, raspi-config, rpi-*), networking
# and desktop plumbing, and on purpose the compiler: Lite's stage 2 lists build-essential,
# gdb and pkg-config, but fsqd must install without them. Lite has no python3-dev either.
lite_packages=(
    locales netbase systemd-timesyncd ca-certificates curl sudo ssh less psmisc strace file
    rsync unzip zip usbutils pciutils htop bash-completion debconf-utils parted dosfstools
    python-is-python3 python3-venv gpiod python3-libgpiod python3-gpiozero python3-spidev
    python3-smbus2
)

# /proc/cpuinfo of a Raspberry Pi 5 (4 x Cortex-A76); onnxruntime reads it, and under
# qemu-user the host's x86 one would show through. QEMU_CPU makes the emulated CPU match.
export QEMU_CPU=cortex-a76
pi5_cpuinfo() {
    local i
    for i in 0 1 2 3; do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\n' "$i"
        printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp'
        printf ' cpuid asimdrdm lrcpc dcpop asimddp\n'
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n'
        printf 'CPU part\t: 0xd0b\nCPU revision\t: 1\n\n'
    done
    printf 'Revision\t: d04170\nSerial\t\t: 0000000000000000\n'
    printf 'Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n'
}

mounts() { findmnt -rn -o TARGET | grep -E "^$dir(/|$)" | sort -r || true; }

unmount_all() {
    local m
    # Deepest first: /proc/cpuinfo before /proc, /dev/pts before /dev.
    while read -r m; do
        [[ -n $m ]] && umount "$m"
    done < <(mounts)
    if [[ -n $(mounts) ]]; then
        echo "pi_chroot.sh: still mounted under $dir:" >&2
        mounts >&2
        return 1
    fi
}

ensure_binfmt() {
    [[ -e /proc/sys/fs/binfmt_misc/status ]] ||
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] ||
        die "no qemu-aarch64 binfmt handler: apt install qemu-user-static binfmt-support"
}

build() {
    if ((rebuild)) && [[ -e $dir ]]; then
        [[ -z $(mounts) ]] || die "$dir has mounts: run '$0 --dir $dir umount' first"
        rm -rf "$dir"
    fi
    if [[ -f $dir/.fsqd-pi-chroot ]]; then
        echo "pi_chroot.sh: reusing $dir ($(cat "$dir/.fsqd-pi-chroot"))"
        return 0
    fi
    command -v debootstrap >/dev/null || die "apt install debootstrap"
    [[ ! -e $dir ]] || die "$dir exists but is not a finished chroot: add --rebuild"
    say "debootstrap bookworm arm64 into $dir"
    local t0=$SECONDS
    mkdir -p "$dir"
    debootstrap --arch=arm64 --include="$(
        IFS=,
        echo "${lite_packages[*]}"
    )" bookworm "$dir" "$mirror"
    echo "pi_chroot.sh: debootstrap took $((SECONDS - t0)) s"
    # Pi OS creates its first user at first boot, with password-less sudo (pi-gen's
    # 010_user-nopasswd); here it is "pi".
    chroot "$dir" useradd -m -s /bin/bash -G sudo pi
    echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$dir/etc/sudoers.d/010_pi-nopasswd"
    # qemu-user reads QEMU_CPU from each process's environment, and the host's PIP_*
    # variables may be what lets pip reach its index: keep both across sudo.
    echo 'Defaults env_keep += "QEMU_CPU PIP_*"' >"$dir/etc/sudoers.d/020_host-env"
    chmod 0440 "$dir"/etc/sudoers.d/0*
    echo raspberrypi >"$dir/etc/hostname"
    echo "built $(date -u +%FT%TZ), debootstrap $((SECONDS - t0)) s" >"$dir/.fsqd-pi-chroot"
}

# What lets apt and pip reach their indexes from this host, copied in on every mount.
copy_host_config() {
    local f
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        rm -f "$dir/etc/apt/sources.list"
        cp /etc/apt/sources.list.d/*.sources "$dir/etc/apt/sources.list.d/"
    fi
    [[ ! -f /etc/apt/sources.list ]] || cp /etc/apt/sources.list "$dir/etc/apt/sources.list"
    for f in /etc/apt/apt.conf.d/99*; do
        [[ ! -f $f ]] || cp "$f" "$dir/etc/apt/apt.conf.d/"
    done
    # Extra CAs this host trusts (an egress proxy's) go into the chroot's bundle.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
        chroot "$dir" update-ca-certificates >/dev/null
    fi
    # pip: the host's files (its PIP_* variables are passed in by as_pi). Pi OS's own
    # /etc/pip.conf names piwheels, which has no aarch64 wheels and is not reachable here.
    rm -f "$dir/etc/pip.conf"
    [[ ! -f /etc/pip.conf ]] || cp /etc/pip.conf "$dir/etc/pip.conf"
    [[ ! -d /etc/xdg/pip ]] || { mkdir -p "$dir/etc/xdg" && cp -r /etc/xdg/pip "$dir/etc/xdg/"; }
}

mount_all() {
    [[ -z $(mounts) ]] || unmount_all
    mount -t proc proc "$dir/proc"
    mkdir -p "$dir/usr/local/share/fsqd-pi-chroot"
    pi5_cpuinfo >"$dir/usr/local/share/fsqd-pi-chroot/cpuinfo"
    mount --bind "$dir/usr/local/share/fsqd-pi-chroot/cpuinfo" "$dir/proc/cpuinfo"
    mount --bind /sys "$dir/sys"
    mount -o remount,bind,ro "$dir/sys"
    mount --bind /dev "$dir/dev"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$dir/dev/pts"
    # A fresh /run, as at boot, but with no systemd or udevd behind it: what an image
    # builder's chroot looks like.
    mount -t tmpfs -o mode=0755 tmpfs "$dir/run"
    copy_host_config
}

# A command inside, as the Pi's user or as root, with a login-like environment.
inside() {
    local user=$1 home=/root path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    local -a pip_env=()
    local var
    for var in $(compgen -e | grep '^PIP_' || true); do
        # A local wheel directory of the host's is not there inside: pip would warn per package.
        [[ ${!var} != /* || -e $dir${!var} ]] || continue
        pip_env+=("$var=${!var}")
    done
    [[ $user == root ]] || { home=/home/$user && path=/usr/local/bin:/usr/bin:/bin; }
    # Its own hostname, as fsqd's default node id comes from it.
    unshare --uts -- sh -c 'hostname raspberrypi && exec "$@"' sh \
        chroot "$dir" /usr/sbin/runuser -u "$user" -- env -i HOME="$home" USER="$user" \
        LOGNAME="$user" PATH="$path" LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" "${pip_env[@]}" \
        bash -c "$2"
}
as_pi() { inside pi "$1"; }
# sudo is setuid, which qemu's binfmt handler honours only when registered with the C
# (credentials) flag; Debian's qemu-user-static registers it without. Then root's steps run
# as root directly, as an image builder runs them.
as_admin() {
    if as_pi 'sudo -n true' 2>/dev/null; then as_pi "cd ~ && sudo $1"; else inside root "cd /home/pi && $1"; fi
}

# The demo command exactly as README.md has it: the first line after "Run the demo" that
# starts a venv.
readme_demo() {
    local cmd
    cmd=$(sed -n '/^Run the demo/,/^```$/p' "$repo/README.md" | grep -m1 '^python3 -m venv')
    [[ -n $cmd ]] || die "no demo command found in $repo/README.md"
    if [[ -n $duration ]]; then
        cmd=$(sed -E "s/--duration [^ ]+/--duration $duration/" <<<"$cmd")
    fi
    printf '%s\n' "$cmd"
}

# The test command exactly as README.md has it (the first line after "Run the tests" that
# starts a venv), its pytest pointed at --tests unless that is "all".
readme_tests() {
    local cmd
    cmd=$(sed -n '/^Run the tests/,/^```$/p' "$repo/README.md" | grep -m1 '^python3 -m venv')
    [[ $cmd == *'.venv/bin/pytest -q' ]] || die "no test command ending in 'pytest -q' in $repo/README.md"
    [[ $tests == all ]] || cmd="$cmd -p no:cacheprovider $tests"
    printf '%s\n' "$cmd"
}

run_test() {
    local t0 demo testcmd
    say "no compiler, no Python headers inside"
    if as_pi 'command -v gcc cc c99 clang'; then die "a compiler is installed in $dir"; fi
    # shellcheck disable=SC2016  # these expand inside the chroot
    if as_pi 'dpkg-query -W -f="\${Status}\n" python3-dev 2>/dev/null | grep -q "ok installed"'; then
        die "python3-dev is installed in $dir"
    fi
    # shellcheck disable=SC2016
    as_pi 'echo "uname -m: $(uname -m); $(python3 --version); cpu: $(grep -m1 "CPU part" /proc/cpuinfo)"'

    say "the repository, cloned fresh ($repo, branch $branch)"
    rm -rf "$dir/srv/fsqd.git" "$dir/home/pi/fsqd"
    git clone -q --bare --single-branch --branch "$branch" "$repo" "$dir/srv/fsqd.git"
    chroot "$dir" chown -R pi:pi /srv/fsqd.git # git refuses a repository someone else owns
    # git is not on Pi OS Lite: installing it is the README's first step.
    if as_pi 'sudo -n true' 2>/dev/null; then
        echo "pi_chroot.sh: sudo works: root's steps run through sudo"
    else
        echo "pi_chroot.sh: sudo cannot run under this qemu binfmt handler (no C flag): root's steps run as root"
    fi
    as_pi 'command -v git >/dev/null' || as_admin 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q git >/dev/null'
    as_pi "git clone -q --branch '$branch' /srv/fsqd.git ~/fsqd && git -C ~/fsqd log --oneline -1"

    demo=$(readme_demo)
    say "README demo: $demo"
    t0=$SECONDS
    # Each step of the chain is traced with the seconds since the start.
    # shellcheck disable=SC2016
    as_pi "cd ~/fsqd && PS4='+ [\${SECONDS} s] ' && set -x && $demo"
    echo "pi_chroot.sh: demo (venv + pip install + run) took $((SECONDS - t0)) s"
    as_pi "cd ~/fsqd && .venv/bin/pip list --format=freeze"

    testcmd=$(readme_tests)
    say "README test command: $testcmd"
    t0=$SECONDS
    # shellcheck disable=SC2016
    as_pi "cd ~/fsqd && PS4='+ [\${SECONDS} s] ' && set -x && $testcmd"
    echo "pi_chroot.sh: test command (venv + pip install -e .[test] + pytest) took $((SECONDS - t0)) s"
    if as_pi 'cd ~/fsqd && .venv/bin/pip show -q hdrhistogram 2>/dev/null'; then
        die "hdrhistogram (no aarch64 wheel) was installed by the test extra"
    fi

    say "fsqd probe --self-test --emulated, then with a failing chip"
    # shellcheck disable=SC2016
    as_pi 'cd ~/fsqd && set -o pipefail && n=$(.venv/bin/fsqd probe --self-test --emulated | grep -c " PASS$") && echo "exit status 0, $n axes PASS"'
    # shellcheck disable=SC2016
    as_pi 'cd ~/fsqd && { .venv/bin/fsqd probe --self-test --emulated --emulated-fault lsm6dsox:dead-x | grep FAIL; rc=${PIPESTATUS[0]}; echo "exit status $rc"; [ "$rc" -eq 74 ]; }'

    say "tools/install.sh as root (systemd is not PID 1 here)"
    t0=$SECONDS
    as_admin "fsqd/tools/install.sh"
    echo "pi_chroot.sh: install.sh took $((SECONDS - t0)) s"
    as_pi 'systemctl is-enabled fsqd.service; id fsqd; /opt/fsqd/bin/fsqd --version || true'
    as_pi '/opt/fsqd/bin/pip list --format=freeze'
    say "tools/install.sh again (an upgrade: keeps the config)"
    as_admin "fsqd/tools/install.sh --no-apt 2>&1 | grep -v '^+ '"

    say "tools/install.sh --uninstall --purge"
    as_admin "fsqd/tools/install.sh --uninstall --purge"
    if as_pi 'ls /etc/systemd/system/*/fsqd.service 2>/dev/null'; then
        die "fsqd.service is still enabled after --uninstall"
    fi
    # Back to the image as built, for the next run: what this run added goes.
    inside root 'userdel fsqd && groupdel hailo && groupdel i2c
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -q git python3-systemd >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -q >/dev/null
        rm -rf /home/pi/fsqd /srv/fsqd.git /home/pi/.cache'
}

if [[ $action == umount ]]; then
    unmount_all
    exit 0
fi

ensure_binfmt
build
trap unmount_all EXIT
mount_all
case $action in
test)
    run_test
    say "done: demo, test command, probe --self-test and install.sh passed under qemu ($dir, unmounted on exit)"
    ;;
shell) chroot "$dir" /bin/bash -l || true ;;
esac

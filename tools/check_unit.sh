#!/usr/bin/env bash
# Offline checks of the systemd unit, for CI and before a release:
#   1. systemd-analyze verify, in a staged root: the unit's commands do not exist on a
#      build machine (/opt/fsqd/bin/fsqd), so they are stubbed there, next to a copy of
#      this machine's own units (the targets fsqd.service orders itself against).
#      Any output at all (unknown keys, bad values) counts as a failure.
#   2. systemd-analyze security --offline=yes: the exposure score must be <= MAX.
#
# usage: tools/check_unit.sh [UNIT] [MAX]     (defaults: systemd/fsqd.service 2.0)
# exit: 0 clean, 1 a check failed, 69 (EX_UNAVAILABLE) systemd-analyze is missing.
set -euo pipefail

unit=${1:-systemd/fsqd.service}
max=${2:-2.0}

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check_unit: systemd-analyze not found (apt install systemd)" >&2
    exit 69
fi
if [[ ! -f $unit ]]; then
    echo "check_unit: no unit file at $unit" >&2
    exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

units_dir=/usr/lib/systemd/system
[[ -d $units_dir ]] || units_dir=/lib/systemd/system
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/bin"
cp -r "$units_dir" "$root/usr/lib/systemd/system"
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
# A stub for every absolute command in Exec*= (prefixes like - @ + ! : stripped).
sed -n 's/^Exec[A-Za-z]*=[-@+!:]*\(\/[^ ]*\).*/\1/p' "$unit" | while read -r cmd; do
    mkdir -p "$root$(dirname "$cmd")"
    printf '#!/bin/sh\nexit 0\n' >"$root$cmd"
    chmod 0755 "$root$cmd"
done
name=$(basename "$unit")
cp "$unit" "$root/etc/systemd/system/$name"

status=0
if ! out=$(systemd-analyze verify --man=no --root="$root" "$name" 2>&1) || [[ -n $out ]]; then
    echo "check_unit: systemd-analyze verify $unit is not clean:" >&2
    printf '%s\n' "${out:-"(non-zero exit, no output)"}" >&2
    status=1
else
    echo "check_unit: systemd-analyze verify $unit: clean"
fi

report=$(systemd-analyze security --offline=yes "$unit" 2>&1) || true
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$report")
if [[ -z $score ]]; then
    echo "check_unit: no exposure score in systemd-analyze security output:" >&2
    printf '%s\n' "$report" >&2
    status=1
elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
    echo "check_unit: exposure $score is above $max; what counts:" >&2
    grep '✗' <<<"$report" >&2 || true
    status=1
else
    echo "check_unit: systemd-analyze security --offline=yes $unit: exposure $score (<= $max)"
fi
exit "$status"

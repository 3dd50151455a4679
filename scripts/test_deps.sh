#!/usr/bin/env bash
# Installs the Debian packages the test suite uses, when (and only when) one
# of their commands is missing: compilers, make, the real programs that
# scripts/test_real_programs.sh runs, pkg-config for `make check-install`,
# binutils for `make check-library`.
# Run by `make test` and by .ci/run. Needs root (or sudo) only if something
# is missing; without it, says what to install and carries on.
set -euo pipefail

# command -> Debian package that provides it
declare -A need=(
    [gcc]=gcc
    [g++]=g++
    [make]=make
    [python3]=python3
    [perl]=perl
    [git]=git
    [pkg-config]=pkg-config
    [tar]=tar
    [gzip]=gzip
    [awk]=gawk
    [timeout]=coreutils
    [md5sum]=coreutils
    [ldd]=libc-bin
    [readelf]=binutils
    [nm]=binutils
    [size]=binutils
)
missing=()
for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# perl's Digest::MD5 (part of perl, but check anyway)
if command -v perl >/dev/null 2>&1 && ! perl -MDigest::MD5 -e 1 2>/dev/null; then
    missing+=(perl)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "test_deps: missing packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
        exit 0
    fi
fi
echo "test_deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/bin/sh
# Install the Debian packages uswap needs, if any is missing (root: apt-get).
set -e
PKGS="build-essential liblz4-dev libzstd-dev liburing-dev libhiredis-dev libcmocka-dev gnuplot-nox pkg-config groff-base spin redis-server redis-tools python3"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing; run as root or install them" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null

#!/bin/sh
# make verify, as a test: spin checks the Promela model of the swap-in
# protocol (model/README.md) exhaustively, designs B and A, and that every
# mutant (marker check removed, pin removed, ...) is caught.  About 2 min
# idle, 5-10 min on a loaded 2-vCPU machine.
# timeout: 1500
cd "$(dirname "$0")/../.." || exit 1
command -v spin >/dev/null 2>&1 || { echo "spin not installed (scripts/deps.sh installs it)"; exit 77; }
exec model/run.sh

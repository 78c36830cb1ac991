#!/bin/sh
# seqwall integration tests: network-namespace labs with seqwall inline (needs root).
# Usage: Tests/Integration/run.sh [unittest discover options]
#   SEQWALL_BIN=path/to/seqwall   binary under test (default .build/debug/seqwall)
#   SEQWALL_LAB_KEEP_LOGS=1       keep the labs' temporary directories (daemon logs)
# Exit code: 0 when every test passed (or was skipped), non-zero otherwise.
set -eu
cd "$(dirname "$0")/../.."
# /usr/bin/python3 on purpose: Debian's python3-scapy is installed for it, and the python3
# first on PATH may be another interpreter without scapy.
exec /usr/bin/python3 -m unittest discover -s Tests/Integration -t Tests/Integration -p 'test_*.py' -v "$@"

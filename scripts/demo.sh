#!/usr/bin/env bash
# Set up everything (idempotent) and run the main job on the embedded default:
# simulated Panda + default checkpoint + policy node in the loop, a few closed-loop episodes.
# Extra arguments go to the demo command (see: spatialvla_demo --help).
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec python -m spatialvla_ros.tools.demo "$@"

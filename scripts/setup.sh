#!/usr/bin/env bash
# Set up everything spatialvla_ros needs on a Debian/Ubuntu machine, idempotently:
# Debian packages, the project venv (.venv) with pinned packages, the message package
# (built with rosidl from the ROS 2 pip wheels) and this package itself.
# Each step is skipped when its inputs have not changed, so a second run takes seconds.
# Source it (". scripts/setup.sh") to get the environment in the current shell.
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMPS="$VENV/.spatialvla_stamps"
log() { echo "[setup] $*"; }
hash_of() { (cd "$ROOT" && { cat "$@" 2>/dev/null || true; } | sha256sum | cut -d' ' -f1); }

# 1. Debian packages: cmake + g++ (message build), libusb (open3d), python3.11 + venv.
need=()
for pkg in cmake g++ libusb-1.0-0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
PY="$(command -v python3.11 || true)"
if [ -z "$PY" ]; then need+=(python3.11 python3.11-venv python3.11-dev); fi
if [ "${#need[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  PY="$(command -v python3.11)"
fi

# 2. The venv (the ROS 2 wheels exist for CPython 3.11 only).
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
mkdir -p "$STAMPS"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# ament_index (launch files, configs, messages) searches AMENT_PREFIX_PATH; the venv is our prefix.
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$VENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
if ! grep -q 'spatialvla_ros: ament prefix' "$VENV/bin/activate"; then
  cat >> "$VENV/bin/activate" <<'ACT'
# spatialvla_ros: ament prefix
case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
ACT
fi

# 3. Pinned Python packages.
h="$(hash_of requirements.txt)"
if [ "$(cat "$STAMPS/requirements" 2>/dev/null)" != "$h" ]; then
  log "installing pinned Python packages (first run: a few minutes)"
  python -m pip install -r "$ROOT/requirements.txt" > "$STAMPS/requirements.log" 2>&1 \
    || { grep -v 'is ignored' "$STAMPS/requirements.log" | tail -40; exit 1; }
  echo "$h" > "$STAMPS/requirements"
fi

# 4. The message packages, built with rosidl and installed into the venv: spatialvla_ros_interfaces
#    (msg/ + interfaces/) and tf2_msgs (interfaces/tf2_msgs: /tf's TFMessage, which has no wheel).
build_messages() {  # name, source folder, inputs of its stamp
  local name="$1" src="$2"; shift 2
  local h; h="$(hash_of "$@" interfaces/fix_wheel_includes.cmake requirements.txt)"
  if [ "$(cat "$STAMPS/$name" 2>/dev/null)" = "$h" ]; then return 0; fi
  log "building messages ($name)"
  local build="$ROOT/build/$name" blog="$ROOT/build/$name.log"
  rm -rf "$build"
  mkdir -p "$ROOT/build"
  AMENT_PREFIX_PATH="$VENV" cmake -S "$ROOT/$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DSPATIALVLA_FIX_WHEEL_INCLUDES=ON \
    -DBUILD_TESTING=OFF > "$blog" 2>&1 || { cat "$blog"; exit 1; }
  cmake --build "$build" -j "$(nproc)" >> "$blog" 2>&1 || { tail -50 "$blog"; exit 1; }
  cmake --install "$build" >> "$blog" 2>&1 || { tail -50 "$blog"; exit 1; }
  echo "$h" > "$STAMPS/$name"
}
build_messages interfaces interfaces msg/*.msg interfaces/CMakeLists.txt interfaces/package.xml
build_messages tf2_msgs interfaces/tf2_msgs interfaces/tf2_msgs/msg/*.msg \
  interfaces/tf2_msgs/CMakeLists.txt interfaces/tf2_msgs/package.xml

# 5. This package (editable: code changes need no reinstall; launch/config files are copied).
h="$(hash_of setup.py setup.cfg package.xml launch/* config/*.yaml config/params/*.yaml)"
if [ "$(cat "$STAMPS/package" 2>/dev/null)" != "$h" ]; then
  log "installing spatialvla_ros into the venv"
  python -m pip install -q --no-deps --no-build-isolation -e "$ROOT" > "$STAMPS/pip.log" 2>&1 \
    || { cat "$STAMPS/pip.log"; exit 1; }
  # An editable install skips data_files: install them (ament index marker, package.xml,
  # launch/, config/, msg/) from setup.py's own list into the venv prefix.
  (cd "$ROOT" && python setup.py -q install_data --install-dir "$VENV" --force) \
    > "$STAMPS/data.log" 2>&1 || { cat "$STAMPS/data.log"; exit 1; }
  rm -rf "$ROOT/spatialvla_ros.egg-info"
  # Where ros2 run looks (<prefix>/lib/<package>/<executable>), as setup.cfg arranges on colcon.
  mkdir -p "$VENV/lib/spatialvla_ros"
  python - "$VENV" <<'PY'
import importlib.metadata as md, os, sys
venv = sys.argv[1]
for ep in md.distribution('spatialvla_ros').entry_points:
    if ep.group == 'console_scripts':
        link = os.path.join(venv, 'lib', 'spatialvla_ros', ep.name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join(venv, 'bin', ep.name), link)
PY
  echo "$h" > "$STAMPS/package"
fi
log "ready (venv: $VENV)"

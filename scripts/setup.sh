# Sourced by scripts/test and scripts/demo: make a fresh Debian machine ready, idempotently.
# - Debian packages: ffmpeg/ffprobe (the recorder), GStreamer's RTSP server with python3-gi
#   (the synthetic camera run by /usr/bin/python3), python3-venv, and libfuse3 with fusermount3
#   (the hanging FUSE volume of tests/faults/test_volume.py, served through mfusepy), and
#   chromium with chromium-driver (tests/browser/: the status page in a real headless browser,
#   driven by selenium through Debian's chromedriver, so nothing is downloaded at test time).
# - A virtualenv in .venv with this package installed (editable) plus the test extra.
# Re-running is cheap: apt is only called for packages that are missing, pip only when
# setup.cfg changed.

APT_PACKAGES=(
  ffmpeg procps python3 python3-venv python3-gi
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav
  fuse3 libfuse3-3
  chromium chromium-driver
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '[setup] %s\n' "$*" >&2; }

ensure_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "need root to install: ${missing[*]}"; return 1; }
    sudo=(sudo)
  fi
  say "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  say "no Python >= 3.11 with the venv module found"; return 1
}

ensure_venv() {
  local python stamp want
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    python="$(pick_python)"
    say "creating virtualenv $VENV with $python"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
  fi
  stamp="$VENV/.installed"
  want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing mirror-supervisor and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"
    echo "$want" > "$stamp"
  fi
}

setup_all() {
  ensure_apt_packages
  ensure_venv
}

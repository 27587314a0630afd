#!/usr/bin/env bash
# Installs the Debian packages cloudrec needs, only when one is missing (no network otherwise).
set -euo pipefail
packages=(janus ffmpeg iproute2 time fonts-noto-cjk chromium firefox-esr janus-demos)  # time: GNU time, for the benches; fonts: text watermarks; browsers and janus.js: the browser tests
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/bin/sh
# The Debian packages the tests use beyond Python: Prometheus (promtool checks the alert
# rules; a real server scrapes `fueltrace serve`), Chromium (the regulators' web page is
# tested headless) and a CJK font (so its Chinese labels render in screenshots).
# Installs only what is missing; needs root or sudo on Debian.
set -eu
missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$missing fonts-wqy-microhei"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=""; fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-packages: install these yourself (no apt-get here):$missing" >&2
    exit 1
fi
echo "system-packages: installing$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

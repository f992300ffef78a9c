#!/usr/bin/env bash
# Debian's chromium and chromium-driver, for the survey's browser tests (tests/browser.py).
# Installs them when missing and this is Debian run as root (CI, fresh machines); elsewhere it
# says how, and the browser tests skip (unless CCUB_BROWSER_TESTS=required, which fails them).
set -u
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  packages="chromium chromium-driver"
  apt-get install -y --no-install-recommends $packages >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends $packages >/dev/null; } \
    || echo "install_browser.sh: could not install $packages; the browser tests will not run" >&2
else
  echo "install_browser.sh: no /usr/bin/chromium or /usr/bin/chromedriver; on Debian or Ubuntu run" \
       "'sudo apt-get install chromium chromium-driver' to run the survey's browser tests" >&2
fi
exit 0

#!/usr/bin/env bash
# Installs what integration/scripts/ui_test.py needs: Debian's chromium and
# chromium-driver, and the selenium Python package. Idempotent: installs only
# what is missing. Never downloads a browser of its own (selenium is pointed at
# /usr/bin/chromium and /usr/bin/chromedriver by the test).
set -euo pipefail

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists only when apt does not know chromium yet.
    if ! apt-cache show chromium-driver >/dev/null 2>&1; then
        $SUDO apt-get update
    fi
    if ! $SUDO apt-get install -y --no-install-recommends chromium chromium-driver; then
        # Stale lists (a package moved on the mirror): refresh once and retry.
        $SUDO apt-get update
        $SUDO apt-get install -y --no-install-recommends chromium chromium-driver
    fi
fi

if ! python3 -c "import selenium" >/dev/null 2>&1; then
    python3 -m pip install --quiet selenium || python3 -m pip install --quiet --break-system-packages selenium
fi

/usr/bin/chromium --version
/usr/bin/chromedriver --version
python3 -c "import selenium; print('selenium', selenium.__version__)"

#!/usr/bin/env bash
# One-time set-up, safe to re-run: a virtual environment at .venv with the locked dependency versions,
# the project installed editable, and the system packages headless rendering, browser tests and the
# PostgreSQL half of the feedback tests need (they start their own throwaway server; no service runs).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
APT_PACKAGES=(libosmesa6 chromium chromium-driver postgresql)

install_system_packages() {
  local missing=()
  dpkg -s libosmesa6 >/dev/null 2>&1 || missing+=(libosmesa6)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "setup: cannot install system packages without root. Run this, then re-run the set-up:" >&2
      echo "  sudo apt-get update && sudo apt-get install -y ${APT_PACKAGES[*]}" >&2
      echo "setup: continuing; rendering, browser and PostgreSQL tests need them" \
        "(DYADIC_SKIP_POSTGRES=1 skips the PostgreSQL ones)." >&2
      return 0
    fi
  fi
  echo "setup: installing system packages: ${missing[*]}"
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
}

# A dropped download (seen in CI: ray's 79 MB wheel cut off six times running) is retried whole, up to 3 times;
# what pip finished is kept, so a retry fetches only what is missing.
pip_install() {
  local try
  for try in 1 2 3; do
    .venv/bin/python -m pip install -q "$@" && return 0
    echo "setup: 'pip install $*' failed (try $try of 3)" >&2
    sleep $((try * 10))
  done
  echo "setup: pip could not install the packages; check the network or the package index, then re-run" >&2
  return 1
}

install_python_packages() {
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  local stamp=.venv/.dyadic-setup-stamp
  local want
  want=$(cat requirements.lock pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  echo "setup: installing Python packages into .venv (a few minutes the first time)"
  pip_install --upgrade pip >/dev/null
  # torch==2.13.0 is pinned in the lock: it is the CPU wheel; anything else pulls CUDA builds.
  pip_install -r requirements.lock --resume-retries 20
  # pyrender pins PyOpenGL 3.1.0, which lacks OSMesa contexts; the lock has 3.1.10, so no deps here.
  pip_install --no-deps pyrender==0.1.45
  pip_install --no-deps -e .
  echo "$want" > "$stamp"
}

install_system_packages
install_python_packages
echo "setup: ready (.venv)"

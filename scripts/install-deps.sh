#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs ragd's build and test dependencies from Debian 12 packages.
# Idempotent: when every package is already installed it does nothing (no apt-get update, no network).
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  libjansson-dev libsqlite3-dev libcurl4-openssl-dev libhiredis-dev
  libfaiss-dev libopenblas-dev liblapack-dev
  libinih-dev libssl-dev libxxhash-dev
  libcmocka-dev
  clang libclang-rt-14-dev libomp-14-dev
  libpoppler-glib-dev qpdf
  libtesseract-dev tesseract-ocr-eng libzip-dev libxml2-dev libcairo2-dev
  fonts-dejavu-core
  redis-server curl python3
  python3-django
  libpq-dev postgresql-client-15
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Node.js and npm run PGlite (tests/pg) and the official openai client (tests/node): any install
# that provides the two commands will do (a NodeSource nodejs bundles npm); else Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

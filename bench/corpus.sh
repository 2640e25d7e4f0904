#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the real-text corpus of bench/bench_real.py: Debian's HTML documentation of Python
# 3.11, PostgreSQL 15 and Node.js 18 (about 100 MB of HTML nobody here wrote), and of Git and
# Erlang/OTP (about 185 MB more: enough for stores past 100k chunks). Needs root (apt).
set -euo pipefail
pkgs=(python3.11-doc postgresql-doc-15 nodejs-doc git-doc erlang-doc)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Prepares the corpus of bench/qa/postgres_admin.jsonl: the administration chapters of the
# PostgreSQL 15 manual (HTML) from Debian 12's postgresql-doc-15 package, written by the
# PostgreSQL project, nobody here. Copied from the installed package when present, else fetched
# with `apt-get download` (never installed). Usage: bench/pgdocs.sh DIR  (DIR is created)
set -euo pipefail
out=${1:?usage: bench/pgdocs.sh DIR}
src=/usr/share/doc/postgresql-doc-15/html
if [ ! -d "$src" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download postgresql-doc-15 >/dev/null)
    dpkg-deb -x "$tmp"/postgresql-doc-15_*.deb "$tmp/root"
    src="$tmp/root/usr/share/doc/postgresql-doc-15/html"
fi
mkdir -p "$out"
# backup and restore, maintenance, client authentication, server configuration, the server
# applications, localisation, upgrades
for pat in 'backup*.html' continuous-archiving.html 'routine-*.html' 'auth-*.html' \
           'client-authentication*.html' 'app-pg*.html' 'runtime-config-*.html' locale.html \
           charset.html multibyte.html upgrading.html; do
    for f in $src/$pat; do
        [ -f "$f" ] && cp "$f" "$out/"
    done
done
ls "$out" | wc -l >&2

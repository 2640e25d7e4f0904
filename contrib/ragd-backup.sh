#!/bin/sh
# SPDX-License-Identifier: MIT
# ragd-backup.sh DATA_DIR DEST_DIR - backs up a ragd data dir while ragd runs (docs/OPERATIONS.md).
# The vector index files are copied first, then the SQLite database through SQLite's online
# backup API (Python's sqlite3.Connection.backup): a consistent snapshot taken inside one read
# transaction, which never blocks ragd's writes. An index older than the database copy is fine:
# at restore ragd sees that its generation does not match and rebuilds it from SQLite, without
# embedding anything again. Exit 0 on success; every file lands under DEST_DIR atomically.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 DATA_DIR DEST_DIR" >&2
    exit 2
fi
src=$1
dest=$2
if [ ! -f "$src/ragd.sqlite3" ]; then
    echo "ragd-backup: $src/ragd.sqlite3 not found: not a ragd data dir" >&2
    exit 1
fi
mkdir -p "$dest"
for f in index.faiss index.faiss.meta; do
    if [ -f "$src/$f" ]; then
        cp -p "$src/$f" "$dest/$f.tmp"
        mv "$dest/$f.tmp" "$dest/$f"
    fi
done
python3 - "$src/ragd.sqlite3" "$dest/ragd.sqlite3" <<'PY'
import os
import sqlite3
import sys

src_path, dest_path = sys.argv[1], sys.argv[2]
tmp = dest_path + ".tmp"
if os.path.exists(tmp):
    os.remove(tmp)
src = sqlite3.connect("file:%s?mode=ro" % src_path, uri=True, timeout=30)
dst = sqlite3.connect(tmp)
src.backup(dst)  # all pages in one step: one consistent snapshot
dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
dst.close()
src.close()
if ok != "ok":
    sys.exit("ragd-backup: integrity check of the copy failed: %s" % ok)
os.replace(tmp, dest_path)
PY
echo "ragd-backup: $src -> $dest"

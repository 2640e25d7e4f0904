#!/usr/bin/env python3
"""Replies of two daemons over a query file, compared without timings_ms (and embedding_cache,
which reports per-process cache state). Prints the count of identical and differing replies."""
import json, sys, urllib.request
def ask(port, q, mode):
    body = json.dumps({"query": q, "k": 10, "mode": mode, "ef_search": 16}).encode()
    r = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/retrieve" % port, body,
                               {"Content-Type": "application/json"}), timeout=30).read()
    d = json.loads(r)
    d.pop("timings_ms", None); d.pop("embedding_cache", None)
    return json.dumps(d, sort_keys=True)
pa, pb, qf, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
same = diff = 0
for line in open(qf):
    q = line.rstrip("\n")
    if not q: continue
    if ask(pa, q, mode) == ask(pb, q, mode): same += 1
    else: diff += 1
print(mode, "identical", same, "different", diff)

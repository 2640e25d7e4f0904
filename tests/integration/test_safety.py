# SPDX-License-Identifier: MIT
"""
test_safety.py - what no request may make ragd do: read outside its allowed roots (absolute
paths elsewhere, "..", symlinked roots and symlinks inside a root that leave it), answer without
the bearer token when one is set, or accept bodies over the limit. Against the real binary.
"""
import os

from harness import check, eq, expect_error, fixture, shared, short, test, write

SECRET = "The launch code is ultramarine."


@fixture("roots")
def roots_fixture(ctx):
    root = ctx.path("root")
    write(os.path.join(root, "kb", "faq.md"), "# FAQ\n\nReturns are accepted for 30 days.\n")
    write(ctx.path("outside", "secret.md"), "# Secret\n\n%s\n" % SECRET)
    os.symlink(ctx.path("outside"), os.path.join(root, "linkdir"))          # dir leaving root
    os.symlink(ctx.path("outside", "secret.md"), os.path.join(root, "kb", "link.md"))
    os.symlink(ctx.path("outside"), ctx.path("rootlink"))                 # outside -> outside
    d = ctx.serve(env={"RAGD_INGEST_ALLOWED_ROOTS": root})
    return {"d": d, "root": root, "ctx": ctx}


def no_secret(d):
    ans = d.retrieve({"query": "launch code ultramarine", "k": 10})
    for r in ans["results"]:
        check("ultramarine" not in r["text"], "secret read via %s" % r["source"])


@shared("roots")
def paths_outside_roots_forbidden(t, fx):
    d, root, ctx = fx["d"], fx["root"], fx["ctx"]
    attempts = [
        ctx.path("outside"),                            # absolute, elsewhere
        ctx.path("outside", "secret.md"),               # a file elsewhere
        os.path.join(root, "..", "outside"),            # dot-dot
        os.path.join(root, "kb", "..", "..", "outside", "secret.md"),
        os.path.join(root, "linkdir"),                  # symlink inside root to outside
        os.path.join(root, "linkdir", "secret.md"),
        os.path.join(root, "kb", "link.md"),            # file symlink leaving root
        ctx.path("rootlink"),
        "outside",                                      # relative to the daemon's cwd
        "../" * 12 + "etc/passwd",
        "/",
        "/etc/passwd",
        ctx.path("outside", "missing.md"),              # does not exist, outside: still 403
        os.path.join(root, "linkdir", "missing.md"),    # missing behind a link leaving the root
        os.path.join(root, "linkdir", "a", "b", "..", "c"),
    ]
    before = d.health()["store"]
    for p in attempts:
        r = d.call("POST", "/ingest", {"path": p})
        expect_error(r, 403, "forbidden", "allowed", "ingest %s" % p)
        r = d.call("POST", "/ingest", {"path": p, "wait": False})
        expect_error(r, 403, "forbidden", None, "background ingest %s" % p)
    eq(d.health()["store"], before, "store unchanged by refused ingests")
    no_secret(d)
    r = d.call("POST", "/ingest", {"path": os.path.join(root, "kb", "nope.md")})
    expect_error(r, 404, "not_found", what="missing path inside the roots")


@shared("roots")
def symlinks_inside_root_skipped_and_reported(t, fx):
    d, root = fx["d"], fx["root"]
    rep = d.ingest(root)
    eq(rep["documents"]["added"], 1, "only kb/faq.md is read (%s)" % short(rep))
    skipped = sorted(w["source"] for w in rep["warnings"])
    eq(skipped, ["kb/link.md", "linkdir"], "symlinks reported as skipped")
    check(all("outside" in w["message"] for w in rep["warnings"]), short(rep["warnings"]))
    no_secret(d)
    ans = d.retrieve({"query": "returns accepted 30 days", "k": 1})
    eq(ans["results"][0]["source"], "kb/faq.md", "the file inside the root is searchable")


@test
def allowed_roots_default_to_ingest_paths(t):
    write(t.path("docs", "a.md"), "# A\n\nAlpha.\n")
    write(t.path("other", "b.md"), "# B\n\nBeta.\n")
    d = t.serve(env={"RAGD_INGEST_ALLOWED_ROOTS": None, "RAGD_INGEST_PATHS": "docs"})
    eq(d.ingest(t.path("docs"))["documents"]["added"], 1, "configured path allowed")
    expect_error(d.call("POST", "/ingest", {"path": t.path("other")}), 403, "forbidden",
                 what="path outside the configured ingest paths")


@test
def bearer_token_required(t):
    token = "s3cret-token-for-tests"
    write(t.path("docs", "a.md"), "# A\n\nAlpha bravo charlie.\n")
    d = t.serve(env={"RAGD_SERVER_AUTH_TOKEN": token})
    eq(d.call("GET", "/health").status, 200, "/health needs no token")
    good = {"Authorization": "Bearer " + token}
    calls = [("POST", "/retrieve", {"query": "alpha"}), ("POST", "/ingest", {"path": "docs"}),
             ("GET", "/documents", None), ("POST", "/documents", {"id": "x", "text": "y"}),
             ("GET", "/jobs/1-1", None), ("GET", "/", None), ("GET", "/nope", None)]
    for method, path, body in calls:
        expect_error(d.call(method, path, body), 401, "unauthorized", what="%s %s" % (method,
                                                                                    path))
        for bad in ("Bearer wrong", "Bearer " + token + "x", "Basic " + token, token,
                    "Bearer " + token[:-1]):
            expect_error(d.call(method, path, body, headers={"Authorization": bad}), 401,
                         "unauthorized", what="%s %s with %r" % (method, path, bad))
    eq(d.call("POST", "/ingest", {"path": t.path("docs")}, headers=good).status, 200,
       "ingest with the token")
    r = d.call("POST", "/retrieve", {"query": "alpha bravo"}, headers=good)
    eq(r.status, 200, "retrieve with the token")
    eq(r.json["results"][0]["source"], "a.md", "retrieve result")
    # the scheme name is case-insensitive (RFC 9110); the token is not
    eq(d.call("POST", "/retrieve", {"query": "alpha"},
              headers={"Authorization": "bearer " + token}).status, 200, "lower-case scheme")
    expect_error(d.call("POST", "/retrieve", {"query": "alpha"},
                        headers={"Authorization": "Bearer " + token.upper()}), 401,
                 "unauthorized", what="token in another case")
    out = t.cli("check-config", env={"RAGD_SERVER_AUTH_TOKEN": token})
    check(token not in out.out and "auth_token = <redacted>" in out.out,
          "check-config redacts the token: %s" % out.out)
    logs = d.stderr_text()
    check(token not in logs, "token in the daemon's log")
    # the CLI forwards to the daemon with the token and follows the job, printing progress lines
    r = t.cli("ingest", "--path", t.path("docs"), "--data-dir", d.data_dir, "--json",
              env={"RAGD_SERVER_AUTH_TOKEN": token})
    eq(r.rc, 0, "forwarded CLI ingest with the token: %r" % r)
    check("ingest: 1/1" in r.err, "progress line on a non-terminal: %r" % r.err)
    eq(r.json()["documents"]["unchanged"], 1, "forwarded report")
    r = t.cli("ingest", "--path", t.path("docs"), "--data-dir", d.data_dir)
    eq(r.rc, 1, "forwarded CLI ingest without the token: %r" % r)
    check("401" in r.err, "the refusal is shown: %r" % r.err)

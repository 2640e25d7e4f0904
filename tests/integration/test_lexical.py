# SPDX-License-Identifier: MIT
"""
test_lexical.py - lexical variants on the keyword side against the real binary: questions whose
only link to a passage is another form of a word (back-up / backup, email / e-mail, 30days /
30-day, 24 hours / 24h, color / colour, gray / grey) find it with [retrieve] lexical_variants
on and find nothing with it off; and the model-embedder cosine floor [retrieve]
min_vector_score turning a low-coverage answer confident.
"""
import os

from harness import check, eq, faiss_only, short, test, write

DOCS = {
    "backup.md": "# Nightly jobs\n\nThe share gets a backup every night at two.\n",
    "mail.md": "# Contact\n\nWrite an e-mail to the helpdesk for a new badge.\n",
    "refunds.md": "# Returns\n\nA 30-day window applies to returns of unopened goods.\n",
    "paint.md": "# Office\n\nThe colour of the meeting room walls is grey.\n",
    "timer.md": "# Sessions\n\nSessions expire after 24h without activity.\n",
}

CASES = [("back-up", "backup.md"), ("email", "mail.md"), ("30days", "refunds.md"),
         ("24 hours", "timer.md"), ("color", "paint.md"), ("gray", "paint.md")]


def corpus(t):
    docs = t.path("docs")
    for name, text in DOCS.items():
        write(os.path.join(docs, name), text)
    r = t.cli("ingest", "--path", docs, "--data-dir", t.path("data"), "--json", timeout=120)
    eq(r.rc, 0, "ingest: %r" % r)


def query(t, q, env):
    r = t.cli("query", q, "-k", "3", "--data-dir", t.path("data"), "--json", env=env, timeout=60)
    eq(r.rc, 0, "query %r: %r" % (q, r))
    return r.json()


@test
@faiss_only  # the variants are FTS5 groups; the pgvector backend's keyword side takes plain terms
def lexical_variants_meet_on_keyword_side(t):
    corpus(t)
    for q, want in CASES:
        on = query(t, q, {"RAGD_RETRIEVE_MODE": "keyword", "RAGD_RETRIEVE_LEXICAL_VARIANTS": "true"})
        got = [r["source"] for r in on["results"]]
        check(got and got[0] == want, "%r with variants: %s" % (q, short(on["results"])))
        check(not on["low_confidence"], "%r with variants is confident (coverage %s)"
              % (q, on.get("coverage")))
        off = query(t, q, {"RAGD_RETRIEVE_MODE": "keyword", "RAGD_RETRIEVE_LEXICAL_VARIANTS":
                           "false"})
        check(want not in [r["source"] for r in off["results"]],
              "%r without variants should not reach %s: %s" % (q, want, short(off["results"])))


@test
@faiss_only  # its coverage numbers are those of the FTS5 term statistics
def lexical_min_vector_score_floor(t):
    corpus(t)
    # nine words, each passage holding at most two: lexical coverage below 0.25
    q = "helpdesk badge nightly share unopened goods walls activity expire"
    base = query(t, q, {})
    check(base["low_confidence"] and base["coverage"] < 0.25,
          "low coverage answer is low_confidence: %s" % short(base))
    eq(base["unknown_share"], 0.0, "every word is in the store")
    low_floor = query(t, q, {"RAGD_RETRIEVE_MIN_VECTOR_SCORE": "0.01"})
    eq(low_floor["low_confidence"], False, "a cosine above the floor makes it confident")
    high_floor = query(t, q, {"RAGD_RETRIEVE_MIN_VECTOR_SCORE": "0.99"})
    eq(high_floor["low_confidence"], True, "a cosine below the floor changes nothing")

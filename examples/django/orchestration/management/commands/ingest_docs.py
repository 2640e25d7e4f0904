# SPDX-License-Identifier: MIT
"""
ingest_docs.py - `manage.py ingest_docs --path docs/ --reset`: asks ragd to ingest a directory
(POST /ingest; the path is made absolute, since ragd resolves relative paths against its own
working directory) and prints the report. Exits non-zero when ragd is down or refuses, and with
status 3 when some files failed (listed on stderr), like `ragd ingest`.
"""
import os

from django.core.management.base import BaseCommand, CommandError

from orchestration import rag


class Command(BaseCommand):
    help = "Ingest a directory (or file) of documents into ragd."

    def add_arguments(self, parser):
        parser.add_argument("--path", default="docs/",
                            help="file or directory to ingest (default: docs/)")
        parser.add_argument("--reset", action="store_true",
                            help="empty ragd's store first")

    def handle(self, *args, **options):
        path = os.path.abspath(options["path"])
        if not os.path.exists(path):
            raise CommandError("%s does not exist" % path)
        try:
            report = rag.ingest(path, reset=options["reset"])
        except rag.RagdError as e:
            raise CommandError(str(e))
        docs, chunks = report["documents"], report["chunks"]
        self.stdout.write(
            "ingested %s%s: %d seen, %d added, %d updated, %d unchanged, %d removed, %d failed; "
            "%d chunks added, %d embedded"
            % (report["root"], " (after reset)" if report.get("reset") else "", docs["seen"],
               docs["added"], docs["updated"], docs["unchanged"], docs["removed"],
               docs["failed"], chunks["added"], chunks["embedded"]))
        for err in report.get("errors", []):
            self.stderr.write("  %s: %s (%s)" % (err["source"], err["message"], err["code"]))
        if docs["failed"]:
            raise CommandError("%d files failed" % docs["failed"], returncode=3)

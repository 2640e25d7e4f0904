# SPDX-License-Identifier: MIT
"""commands - ingest_docs."""

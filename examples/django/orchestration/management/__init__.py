# SPDX-License-Identifier: MIT
"""management - the orchestration app's management commands."""

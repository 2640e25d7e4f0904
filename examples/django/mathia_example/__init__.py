# SPDX-License-Identifier: MIT
"""mathia_example - a minimal Django project showing how a chat app calls ragd."""

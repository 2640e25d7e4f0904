#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""manage.py - Django's command-line utility for the Mathia example project (ragd client)."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mathia_example.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

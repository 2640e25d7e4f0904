# SPDX-License-Identifier: MIT
"""wsgi.py - WSGI entry point (gunicorn mathia_example.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mathia_example.settings")
application = get_wsgi_application()

# SPDX-License-Identifier: MIT
"""
settings.py - settings of the Mathia example project. Only what the ragd integration needs: the
orchestration app, one JSON view, no database. The RAGD_* settings come from the environment so
the same code runs beside a local ragd, in CI, and in production.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "false").lower() in ("1", "true", "yes", "on")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "orchestration",
]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "mathia_example.urls"
WSGI_APPLICATION = "mathia_example.wsgi.application"

# The chat app keeps its state elsewhere; this example needs no database.
DATABASES = {}

USE_TZ = True
TIME_ZONE = "UTC"


def _env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


# ---- ragd ------------------------------------------------------------------------------------
# Base URL of the ragd sidecar.
RAGD_URL = os.environ.get("RAGD_URL", "http://127.0.0.1:8088")
# Master switch, same name as ragd's: false sends no request at all and answers without context.
RAG_ENABLED = _env_bool("RAG_ENABLED", True)
# Seconds a retrieval may take before the chat goes on without context. Keep it short: ragd
# answers in milliseconds, and a chat reply must not wait on a sick sidecar.
RAGD_TIMEOUT = float(os.environ.get("RAGD_TIMEOUT", "0.5"))
# Seconds an ingest (management command) may take.
RAGD_INGEST_TIMEOUT = float(os.environ.get("RAGD_INGEST_TIMEOUT", "600"))
# Chunks retrieved per question.
RAG_TOP_K = int(os.environ.get("RAG_TOP_K", "5"))
# Intents whose LLM calls get the retrieved context prepended.
RAG_INTENTS = ("general_chat", "search_info")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"orchestration": {"handlers": ["console"], "level": os.environ.get(
        "DJANGO_LOG_LEVEL", "WARNING")}},
}

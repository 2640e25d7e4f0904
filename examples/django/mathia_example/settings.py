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
# ragd's bearer token ([server] auth_token / RAGD_SERVER_AUTH_TOKEN on the daemon); empty: none.
RAGD_TOKEN = os.environ.get("RAGD_TOKEN", "")
# The LLM wrapper: "ragd" sends each turn to ragd's OpenAI-compatible chat endpoint
# (POST /v1/chat/completions: retrieval, prompt, budget, guardrails and the model call in one);
# "context" asks ragd's POST /context for the system prompt and calls the LLM client itself.
LLM_BACKEND = os.environ.get("LLM_BACKEND", "ragd")
# Seconds a whole chat turn through ragd may take (the model's answer included).
RAGD_CHAT_TIMEOUT = float(os.environ.get("RAGD_CHAT_TIMEOUT", "60"))
# Phase 2: the fine-tuned model answers FINETUNED_INTENTS when USE_FINETUNED_MODEL is on; false
# rolls back to LLM_MODEL. With LLM_BACKEND = "ragd" the daemon's own [chat] use_finetuned decides
# (set USE_FINETUNED_MODEL in ragd's environment too); the name sent here is only a hint that
# ragd ignores unless its [chat] allow_caller_model is true.
USE_FINETUNED_MODEL = _env_bool("USE_FINETUNED_MODEL", False)
LLM_MODEL = os.environ.get("LLM_MODEL", "gpt-4o-mini")
LLM_FINETUNED_MODEL = os.environ.get("LLM_FINETUNED_MODEL", "")
FINETUNED_INTENTS = ("general_chat", "intent_parse")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"orchestration": {"handlers": ["console"], "level": os.environ.get(
        "DJANGO_LOG_LEVEL", "WARNING")}},
}

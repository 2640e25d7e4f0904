# SPDX-License-Identifier: MIT
"""apps.py - the orchestration app's configuration."""
from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    verbose_name = "Chat orchestration (ragd)"

# SPDX-License-Identifier: MIT
"""urls.py - the example's one endpoint: POST /chat."""
from django.urls import path

from orchestration import views

urlpatterns = [
    path("chat", views.chat, name="chat"),
]

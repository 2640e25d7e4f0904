# SPDX-License-Identifier: MIT
"""views.py - POST /chat {"message": "...", "intent": "search_info", "filters": {...}}: one chat
turn through the LLM wrapper (settings.LLM_BACKEND: ragd's chat endpoint, or /context and the
stand-in LLM); answers {"reply": ..., "sources": [...], "clarifying": bool}, or 502 when ragd or
its model fails."""
import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orchestration import llm, rag


@csrf_exempt
@require_POST
def chat(request):
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "body is not JSON"}, status=400)
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        return JsonResponse({"error": "'message' must be a non-empty string"}, status=400)
    filters = body.get("filters")
    if filters is not None and not isinstance(filters, dict):
        return JsonResponse({"error": "'filters' must be an object"}, status=400)
    intent = body.get("intent") or "general_chat"
    try:
        result = llm.answer([{"role": "user", "content": message}], intent=intent,
                            rag_filters=filters, request_id=request.headers.get("X-Request-Id"))
    except rag.RagdError as e:
        return JsonResponse({"error": str(e), "code": e.code}, status=502)
    return JsonResponse(result)

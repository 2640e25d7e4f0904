# SPDX-License-Identifier: MIT
"""views.py - POST /chat {"message": "...", "intent": "search_info"}: one chat turn through the
RAG hook and the stand-in LLM; answers {"reply": ..., "sources": [...]}."""
import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orchestration.llm import echo_llm


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
    intent = body.get("intent") or "general_chat"
    result = echo_llm([{"role": "user", "content": message}], intent=intent,
                      request_id=request.headers.get("X-Request-Id"))
    return JsonResponse(result)

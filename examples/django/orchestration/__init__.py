# SPDX-License-Identifier: MIT
"""orchestration - the chat orchestration app: ragd retrieval and the LLM wrapper hook."""

"""The builtin provider: no account, no model call. It answers with the knowledge that matched best."""

from __future__ import annotations

from kaanha.ai_agents.providers.base import AnswerRequest, ProviderAnswer

GREETING = "Hello! I'm {name}. How can I help you today?"


class BuiltinProvider:
    async def answer(self, request: AnswerRequest) -> ProviderAnswer:
        if request.small_talk:
            return ProviderAnswer(GREETING.format(name=request.agent_name))
        if not request.passages:
            return ProviderAnswer(None)
        passage = request.passages[0].passage
        # A pair answers with its answer; a document part with its own text, as written.
        return ProviderAnswer(passage.answer or passage.text)

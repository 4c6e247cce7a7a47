"""Semantic ranking (the `semantic` extra): the packaged MiniLM model finds paraphrases that share no word."""

from __future__ import annotations

from kaanha.ai_agents.retrieval import KnowledgeIndex, Passage, SemanticModel


def test_the_semantic_extra_is_installed_for_the_tests():
    # `make test` installs it (the test extra includes `semantic`): missing, these tests fail, never skip.
    assert SemanticModel.installed()


PASSAGES = [
    Passage(
        id="fee",
        source="knowledge_base",
        text="₹40 below ₹499.",
        question="How much does delivery cost?",
        answer="₹40 below ₹499.",
    ),
    Passage(
        id="return",
        source="knowledge_base",
        text="Within 7 days.",
        question="Can I return an item?",
        answer="Within 7 days.",
    ),
]


def test_meaning_finds_what_words_miss():
    lexical = KnowledgeIndex(PASSAGES).search("what are the shipping charges")
    semantic = KnowledgeIndex(PASSAGES, semantic=True).search("what are the shipping charges")

    assert lexical == []  # not one word in common
    assert semantic[0].passage.id == "fee"
    assert semantic[0].semantic is not None
    assert semantic[0].confidence > 0.38


def test_unrelated_questions_stay_below_the_default_threshold():
    hits = KnowledgeIndex(PASSAGES, semantic=True).search("who won the cricket match yesterday")

    assert all(hit.confidence < 0.38 for hit in hits)


async def test_an_agent_uses_it_when_its_model_is_semantic(client, tenant, runtime):
    from tests.ai_agents.conftest import create_agent
    from tests.conftest import API

    runtime.settings.ai_agents.semantic_ranking = True
    agent = await create_agent(client, tenant, model=None)
    assert agent["model"] == "semantic"

    answer = await client.post(
        f"{API}/ai-agents/{agent['id']}/test",
        json={"question": "what are the shipping charges"},
        headers=tenant.headers,
    )
    assert answer.json()["handoff"] is False, answer.text
    assert answer.json()["reply"].startswith("Delivery is free")

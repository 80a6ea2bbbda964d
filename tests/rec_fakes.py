"""Scripted answers for the recommender's prompts."""

from __future__ import annotations

import json

from convoforge.llm.types import Message


def recommender_reply(messages: list[Message]) -> str:
    """Manager: recommend horror; ranker: The Shining fits best; otherwise a plain answer."""
    text = messages[-1].content
    if "dialogue manager" in text:
        last = text.split("Conversation so far:\n")[1].split("\n\nAnswer")[0].strip().splitlines()[-1]
        if "hello" in last.lower():
            return json.dumps({"action": "ask", "response": "Hi! What genre do you like?"})
        return json.dumps(
            {
                "action": "recommend",
                "liked": ["scary films"],
                "constraints": ["horror"],
                "concepts": ["haunted hotel"],
                "titles": ["The Shinning"],
                "reasoning": "wants horror",
            }
        )
    if "Candidate movie" in text:
        if "The Shining" in text:
            return '{"fit": "excellent fit", "explanation": "A chilling haunted-hotel classic."}'
        return '{"fit": "fair fit", "explanation": "Somewhat related."}'
    return "I like it."


def broken_reply(messages: list[Message]) -> str:
    """Every structured answer is unusable."""
    return "sorry, I do not do JSON"

"""A scripted model that answers every prompt of the persona pipeline sensibly."""

from __future__ import annotations

import itertools
import json
import os
import time
import zlib

from convoforge.llm.types import Message

CONVERSATION = "\n".join(
    f"User {1 + i % 2}: " + line
    for i, line in enumerate(
        [
            "Hi! I just came back from walking my two dogs.",
            "Hello! I love dogs. I play the guitar in the evenings.",
            "That sounds fun. I work as a nurse so I need to relax.",
            "Being a nurse must be hard. I am a college student.",
            "What do you study?",
            "Biology. I want to work with animals one day.",
            "My dogs would love you. Do you like hiking?",
            "I do, the mountains near the city are beautiful.",
            "I hike there every weekend with the dogs.",
            "Maybe I will bring my guitar next time.",
            "Great idea, we could sing by the fire.",
            "Then it is a plan. Bye for now!",
            "Bye, see you soon!",
            "Take care!",
        ]
    )
)

DULL = "\n".join(
    f"User {1 + i % 2}: " + line
    for i, line in enumerate(["Hi.", "Hi.", "How are you?", "Fine.", "Good.", "Yes.", "Ok.", "Ok.", "Bye.", "Bye."])
)

_counter = itertools.count()


def faithful(prompt: str) -> str:
    """CONVERSATION with each speaker also saying its own persona lines (so a faithfulness scorer can pass it)."""
    task = prompt.rsplit("Now write a new conversation", 1)[1]
    personas = {}
    for speaker in ("User 1", "User 2"):
        line = next((x for x in task.splitlines() if x.startswith(f"{speaker} persona:")), "")
        personas[speaker] = line.split(":", 1)[1].strip() if line else ""
    lines = CONVERSATION.splitlines()
    out = []
    for i, line in enumerate(lines):
        speaker = line.split(":", 1)[0]
        out.append(f"{line} {personas[speaker]}" if i < 2 else line)
    return "\n".join(out)


def pipeline_reply(messages: list[Message]) -> str:
    """Answer by recognising the prompt."""
    return answer(messages[-1].content, next(_counter))


_seen: dict[str, int] = {}


def stable_reply(messages: list[Message]) -> str:
    """pipeline_reply chosen by the prompt (its hash, and how often this process saw it), not by a global counter.

    So a run gives the same answers in any process and any order: on Ray workers, after a worker restarts, after a
    resume. With CONVOFORGE_TEST_CALLS set, each conversation request appends this process's id to that file.
    """
    text = messages[-1].content
    k = 0
    if "Now write a new conversation" in text:  # its n candidates differ; judges answer a text the same way
        k = _seen[text] = _seen.get(text, -1) + 1
    if (log := os.environ.get("CONVOFORGE_TEST_CALLS")) and "Now write a new conversation" in text:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(float(os.environ.get("CONVOFORGE_TEST_DELAY", "0")))
    return answer(text, zlib.crc32(text.encode()) + k)


def answer(text: str, n: int) -> str:
    """The scripted answer to one pipeline prompt; `n` picks among the variants (questions, attributes, scores)."""
    if "most specific question" in text:
        return "What do you like to do in your free time?"
    if "Add more persona questions" in text:
        return f"What is your job?\nWhere do you live number {n}?\nWhat pets do you have?"
    if "Imagine you are a person" in text:
        return f"I like hobby number {n} very much."
    if '"contradicts"' in text:
        return '{"contradicts": false}'
    if "Now write a new conversation" in text:
        return DULL if n % 2 else faithful(text)
    if '"score"' in text:
        return json.dumps({"score": 3 + n % 3, "reason": "fine"})
    return "ok"


def slow_reply(messages: list[Message]) -> str:
    """pipeline_reply, slowly (for the kill-and-resume test)."""
    import time

    time.sleep(0.03)
    return pipeline_reply(messages)


def brevity(candidate) -> float:
    """A user critic written as a plain function: shorter conversations score higher."""
    return 1.0 / (1 + len(candidate.turns))


class NoQuestions:
    """A user critic written as a class: drops conversations without any question."""

    name = "no_questions"
    role = "filter"
    reads = ("turns",)
    description = "drops conversations with no question in them"

    async def judge(self, candidates, llm):
        from convoforge.critics import Verdict

        return [Verdict(critic=self.name, passed=any("?" in t.content for t in c.turns)) for c in candidates]


class Learner:
    """A user critic that learns over the run: notes what it was given; once it has seen candidates, drops all."""

    name = "learner"
    role = "filter"
    reads = ("turns",)
    description = "drops every candidate once it has learnt from an earlier iteration"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def learn(self, real, generated):
        self.calls.append((len(real), len(generated)))
        return {"real": len(real), "generated": len(generated)}

    async def judge(self, candidates, llm):
        from convoforge.critics import Verdict

        seen = self.calls[-1][1]
        return [Verdict(critic=self.name, passed=None if not seen else False) for _ in candidates]

"""Prompts the llm layer adds on its own (structured output and its repair)."""

JSON_INSTRUCTION = (
    "Answer with one JSON object only, no prose and no code fence. It must validate against this JSON schema:\n{schema}"
)

JSON_REPAIR = (
    "Your answer was not valid: {error}\n"
    "Reply again with only the corrected JSON object that validates against the schema."
)

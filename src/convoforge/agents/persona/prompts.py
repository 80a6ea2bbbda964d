"""Prompts of the persona generator (Jandaghi et al. 2023, Synthetic-Persona-Chat)."""

QUERY_INDUCTION = (
    "What is the most specific question that you are replying to with the following statements?\n"
    "{statements}\n"
    "Answer with only the question."
)

QUERY_BOOTSTRAP = "{queries}\nAdd more persona questions similar to the above examples. Write one question per line."

PERSONA_BOOTSTRAP = (
    "Imagine you are a person with the following persona:\n{persona}\n"
    "{query} Answer with only one short sentence that starts with 'I' or 'My'. "
    "Do not repeat the given persona."
)

CONTRADICTION = (
    "Profile:\n{profile}\n\nNew statement: {statement}\n"
    "Could the same person say the new statement without contradicting the profile?\n"
    'Answer with JSON: {{"contradicts": true or false}}'
)

GENERATOR_SYSTEM = "You write natural conversations between two people who each have a persona."

EXAMPLE = "User 1 persona: {p1}\nUser 2 persona: {p2}\nConversation:\n{conversation}"

GENERATOR_TASK = (
    "{examples}\n\n"
    "Now write a new conversation.\n"
    "User 1 persona: {p1}\nUser 2 persona: {p2}\n"
    "The conversation must be more than {min_turns_minus_one} turns and less than {max_turns_plus_one} "
    "turns for each user. It must be natural, and not direct copies of their profiles. "
    "Write each turn on its own line starting with 'User 1:' or 'User 2:'.\nConversation:"
)

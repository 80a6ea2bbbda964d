"""Prompts of the built-in critic experts (Jandaghi et al. 2023, FED policies)."""

# Policy phrases of the FED dialogue-quality dimensions used by the quality experts.
FED_POLICIES = {
    "depth": "discusses topics in more depth",
    "coherency": "is more coherent throughout the dialogue",
    "consistency": "has speakers who are more consistent in what they say",
    "diversity": "has more diverse responses",
    "likability": "has speakers who are more likable",
}

PAIRWISE = (
    "Conversation 1:\n{a}\n\nConversation 2:\n{b}\n\n"
    "Which one of Conversation 1 and Conversation 2 {policy}? Why?\n"
    'Answer with JSON: {{"winner": 1 or 2, "reason": "one sentence"}}'
)

POINTWISE = (
    "Conversation:\n{conversation}\n\n"
    "On a scale from 1 (poor) to 5 (excellent), how well does this conversation fit this "
    "description: it {policy}? Why?\n"
    'Answer with JSON: {{"score": 1 to 5, "reason": "one sentence"}}'
)

FAITHFULNESS = (
    "Here are two examples.\n"
    "Profile of User 1: I have a cat. I am a vegetarian.\n"
    "Conversation: User 1: My cat sleeps all day. User 2: Cute!\n"
    "Answer: no, the conversation agrees with the profiles.\n"
    "Profile of User 1: I have a cat. I am a vegetarian.\n"
    "Conversation: User 1: I grilled a steak for dinner. User 2: Yum!\n"
    "Answer: yes, User 1 eats steak but is a vegetarian.\n\n"
    "Profiles:\n{profiles}\n\nConversation:\n{conversation}\n\n"
    "Does the conversation between User 1 and User 2 contradict either of their profiles? Why?\n"
    'Answer with JSON: {{"contradicts": true or false, "reason": "one sentence"}}'
)

TOXICITY = (
    "Conversation:\n{conversation}\n\n"
    "Is any message in this conversation toxic: insulting, hateful, harassing, threatening, "
    "sexually explicit or encouraging harm?\n"
    'Answer with JSON: {{"toxic": true or false, "reason": "one sentence"}}'
)

"""Prompts of the RecLLM-style recommender."""

MANAGER = (
    "You are the dialogue manager of a movie recommender. Read the conversation and decide the next step.\n"
    "User profile (older preferences; the current request overrides it): {profile}\n"
    "Conversation so far:\n{conversation}\n\n"
    'Answer with JSON: {{"action": one of "ask", "recommend", "explain", "answer", "chitchat", '
    '"reasoning": short, "liked": [movies or things the user likes], "disliked": [...], '
    '"constraints": [e.g. genre, era, mood], "concepts": [short search phrases], '
    '"titles": [movie titles that would fit], "response": what to say if not recommending}}'
)

RANKER = (
    "User preferences: {preferences}\n"
    "Candidate movie: {item}\n"
    "Think about how well the movie fits the preferences, then answer with JSON: "
    '{{"fit": one of "excellent fit", "good fit", "fair fit", "poor fit", '
    '"explanation": one sentence for the user}}'
)


MEMORY = "The user said they like: {liked}. They dislike: {disliked}. Constraints: {constraints}."

RECOMMEND_INTRO = "Here are some movies you might enjoy:"
FALLBACK_QUESTION = "What kind of movie are you in the mood for? A genre, a film you loved, or a mood helps me."

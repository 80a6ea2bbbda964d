"""Prompts of the LLM user simulator (RecLLM's controllable simulator)."""

USER = (
    "You are role-playing a person who is chatting with a movie recommender.\n"
    "Who you are: {profile}\n"
    "The movie you secretly want (NEVER say its title): {target}\n"
    "Movies you liked before (you may name these): {liked}\n"
    "How you talk: {verbosity}. Your film knowledge: {knowledge}.\n"
    "Conversation so far:\n{conversation}\n\n"
    "Your goal for this message: {intent}\n"
    "{examples}"
    "Write only your next message as the user, one to three sentences."
)
# with real seekers' phrasing (`--train`): how real users worded such a message, as few-shot examples
EXAMPLES = "Real users wrote such messages like this:\n{lines}\nWrite in the same casual way.\n"

INTENTS = {
    "ask_for_recommendations": "ask for movie recommendations, describing what you want without naming the movie",
    "give_feedback": "react to the recommendations and say what you want instead, using details of the movie you want",
    "ask_for_explanation": "ask why one of the recommended movies would suit you",
    "express_dissatisfaction": "say the recommendations are not what you want and describe your wish more precisely",
    "accept": "happily accept the recommended movie you wanted and thank the recommender",
    "leave": "politely end the conversation",
}

VERBOSITY = {"terse": "very short messages", "normal": "ordinary chat messages", "chatty": "long, friendly messages"}
KNOWLEDGE = {"novice": "you know few film names or directors", "expert": "you know directors, actors and genres"}

TEMPLATES = {
    "ask_for_recommendations": "Can you recommend me {a_genre} movie? I'd like something {plot}",
    "give_feedback": "Hmm, not quite. I want {a_genre} movie{people}. {plot_cap}",
    "ask_for_explanation": "Why would {first} suit me? I'm really after {a_genre} movie.",
    "express_dissatisfaction": "None of those are what I want. I'm looking for {a_genre} film{people}.",
    "accept": "Yes! {first} is exactly what I wanted, thank you!",
    "leave": "Thanks anyway, I'll look for something myself. Bye!",
}

# A user grounded in a real rating history names films they liked, as ReDial seekers do ("like The Babadook (2014)").
TEMPLATES_LIKED = {
    "ask_for_recommendations": [
        "Hi! I'm looking for a good {genre} movie like {liked}.",
        "Hello, I really liked {liked}. Can you suggest {a_genre} movie?",
        "Hi, any {genre} movies you'd recommend? I loved {liked}.",
        "I want to watch {a_genre} movie with {star}. I liked {liked}.",
    ],
    "give_feedback": [
        "Hmm, not quite. I also enjoyed {liked}, something in that vein?",
        "I haven't seen that one. Do you know anything like {liked}?",
    ],
    "express_dissatisfaction": [
        "None of those are what I want. More of {a_genre} film like {liked}.",
        "Not really my taste. I'm after something like {liked}.",
    ],
}

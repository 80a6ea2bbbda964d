"""The profile summariser's prompt: part of the `profile` training format, shared with the recommender."""

PROFILE = (
    "Here are movies a user rated, with their ratings out of 5 and tags:\n{history}\n\n"
    "Write a short natural-language profile of this user's movie taste in two or three sentences "
    "(genres, eras, themes they like and dislike). Do not list every title."
)

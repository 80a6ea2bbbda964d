"""LangGraph graphs: the persona generator and the recommender."""

"""The seed notebook's training text, shared by the demo and the attention demo."""

#: The text the notebook builds its vocabulary, bigram counts and attention demo from.
NOTEBOOK_TEXT = (
    "tiny gpt built with pure numpy. "
    "this is a tiny demo to learn the math of transformers. "
    "it can overfit a short text."
)

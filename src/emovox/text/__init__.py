"""Words for text-reading models: tokenisation and pretrained word embeddings."""

from emovox.text.embeddings import TextStats, WordVectors, embed_texts, tokenize

__all__ = ["TextStats", "WordVectors", "embed_texts", "tokenize"]

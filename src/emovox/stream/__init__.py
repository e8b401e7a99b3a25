"""Streaming: features and GRU state carried across chunks, decisions as audio arrives."""

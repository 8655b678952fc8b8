"""Candidate retrieval: the two-tower model over a FAISS index, and implicit ALS candidates."""

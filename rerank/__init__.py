"""Reranking of fused candidates by a BERT cross-encoder fine-tuned on click/purchase labels."""

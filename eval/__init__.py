"""Evaluation: ranking metrics, protocols and the stage-wise funnel report."""

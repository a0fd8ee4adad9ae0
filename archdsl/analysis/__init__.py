"""Analyses over the IR: the fused execution schedule, the memory plan and cost tables."""

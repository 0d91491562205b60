"""The learner check: write a step yourself and have the step's own tests judge it."""

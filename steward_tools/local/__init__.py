"""Embedded AWS backend for local runs and tests: moto plus a faithful ECR on top of it."""

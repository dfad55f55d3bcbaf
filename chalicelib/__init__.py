"""ecr-steward: event-driven image management for Amazon ECR."""

__version__ = "0.1.0"

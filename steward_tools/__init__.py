"""Operator tooling, never packaged into a function: the `steward` CLI, image push, sample
images, the docker credential helper and the embedded AWS backend (`local/`)."""

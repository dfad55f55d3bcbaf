"""The operator's policy file. `document.py` composes one module per section into the validated
document (`current_policy`); each section's module can be imported alone, without the others."""

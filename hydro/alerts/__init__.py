"""The alert stage: evaluating rules on new readings and recording the alert lifecycle."""

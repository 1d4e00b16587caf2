"""The metrics service: evaluations of inference sets and label-error candidates."""

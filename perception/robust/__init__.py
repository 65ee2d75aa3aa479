"""Making a model harder to fool: defensive quantization and trap-and-replace backdoor defence.

Each module is one method with its ``nesy bench perception`` entry.
"""

"""clinxai: evaluate heatmap explanations of medical-image classifiers by the Clinical XAI Guidelines."""

__version__ = "0.1.0"


class ClinxaiError(Exception):
    """An input problem the user can fix; the message names the file, case or key and what to do."""

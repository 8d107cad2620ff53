"""rareflow: rare-event selection and anomaly detection with normalizing flows and autoencoders."""

from rareflow.errors import RareflowError

__version__ = "0.1.0"

__all__ = ["RareflowError", "__version__"]

"""Whether prometheus-client is installed, and what to install when it is not."""

from ..extras import installed

#: prometheus-client is importable (looked up once, without importing it).
AVAILABLE = installed("prometheus_client")

#: What the check and the view say when it is not.
INSTALL_HINT = "pip install 'django-dbjobs[prometheus]' (the prometheus-client package)"

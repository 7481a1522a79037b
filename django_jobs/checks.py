from django.core.checks import register  # noqa: F401

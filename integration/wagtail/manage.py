#!/usr/bin/env python
"""The Wagtail site's manage.py (run with the virtualenv of `make wagtail`)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wagtailsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

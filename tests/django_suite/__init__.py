# Django's own tests of django.tasks, from Django 6.1.3's tests/tasks, adapted to run
# against django_jobs' backend. Copyright (c) Django Software Foundation and individual
# contributors. All rights reserved. BSD 3-Clause license: see LICENSE-DJANGO in this
# folder. What was adapted or left out, and why: README.md in this folder.
"""Django's ``tests/tasks`` suite (Django 6.1.3) against django_jobs' backend.

The copy is pinned to the Django release it was copied from: on any other Django its
modules skip, with the reason, instead of testing a contract that Django has changed.
"""

import django
import pytest

COPIED_FROM = "6.1.3"

if django.VERSION[:2] != (6, 1):
    pytest.skip(
        f"Django's tests/tasks suite here is copied from Django {COPIED_FROM} and "
        f"runs on Django 6.1 only, not {django.get_version()}",
        allow_module_level=True,
    )

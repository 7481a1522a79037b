"""Process tests of the tasks backend use the worker-runtime fixtures."""

from tests.processes.conftest import jobs_cmd, pytest_runtest_makereport  # noqa: F401

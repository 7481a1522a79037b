from django.apps import AppConfig


class ProcessTestsConfig(AppConfig):
    name = "tests.processes.app"
    label = "django_jobs_process_tests"

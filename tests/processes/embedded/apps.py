from django.apps import AppConfig


class EmbeddedTestsConfig(AppConfig):
    name = "tests.processes.embedded"
    label = "django_jobs_embedded_tests"

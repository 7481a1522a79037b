"""``manage.py jobs new``: run for real against a throwaway app installed for the test."""

import importlib
import io
import re
import sys
import unittest
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_jobs import registry
from django_jobs.scaffold import function_name

pytestmark = pytest.mark.django_db


class TempApp:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def new(self, *args: str) -> list[str]:
        out = io.StringIO()
        call_command("jobs", "new", self.name, *args, stdout=out)
        return [line.removeprefix("wrote ") for line in out.getvalue().splitlines()]

    def files(self) -> dict[str, str]:
        return {
            str(p.relative_to(self.path)): p.read_text() for p in sorted(self.path.rglob("*.py"))
        }

    def import_(self, module: str):
        importlib.invalidate_caches()
        return importlib.import_module(f"{self.name}.{module}")


@pytest.fixture
def temp_app(tmp_path, monkeypatch):
    """A new package on sys.path, in INSTALLED_APPS for the duration of the test."""
    name = f"scaffold_{uuid.uuid4().hex[:10]}"
    path = tmp_path / name
    path.mkdir()
    (path / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, name]):
        yield TempApp(name, path)
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def run_tests(module) -> str:
    """Run a generated unittest module here; fail with its output unless it passes."""
    stream = io.StringIO()
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(stream=stream, verbosity=2).run(suite)
    assert result.wasSuccessful() and result.testsRun == 2, stream.getvalue()
    return stream.getvalue()


@pytest.mark.parametrize(
    "name, func",
    [
        ("SendWelcomeEmail", "send_welcome_email"),
        ("sendWelcomeEmail", "send_welcome_email"),
        ("send_welcome_email", "send_welcome_email"),
        ("HTTPRequestLog", "http_request_log"),
        ("Resize2Images", "resize2_images"),
        ("Sync", "sync"),
    ],
)
def test_function_name_from_camel_or_snake_case(name, func):
    assert function_name(name) == func


def test_new_job_in_a_new_module_with_a_tests_package(temp_app):
    (temp_app.path / "tests").mkdir()
    (temp_app.path / "tests" / "__init__.py").write_text("")
    written = temp_app.new("SendWelcomeEmail", "--queue", "email")
    assert written == [
        str(temp_app.path / "jobs.py"),
        str(temp_app.path / "tests" / "test_send_welcome_email_job.py"),
    ]
    source = Path(written[0]).read_text()
    assert source.count("from django_jobs import job") == 1
    assert '@job(queue="email")' in source
    assert "def send_welcome_email(object_id: int, requested_at: datetime) -> None:" in source
    assert '"""Send welcome email.' in source

    module = temp_app.import_("jobs")
    definition = registry.get(f"{temp_app.name}.jobs.send_welcome_email")
    assert definition is module.send_welcome_email and definition.queue == "email"
    output = run_tests(temp_app.import_("tests.test_send_welcome_email_job"))
    assert "test_enqueued_job_runs" in output


def test_new_job_appends_to_an_existing_module_and_imports_once(temp_app):
    existing = (
        '"""Jobs of the shop."""\n'
        "\n"
        "from django_jobs import job\n"
        "\n"
        "\n"
        "@job\n"
        "def restock(sku):\n"
        "    return sku\n"
    )
    (temp_app.path / "jobs.py").write_text(existing)
    first = temp_app.new("ChargeCard")
    second = temp_app.new("refund_card", "--queue", "slow")
    assert first[1] == str(temp_app.path / "test_jobs_charge_card.py")
    assert second[1] == str(temp_app.path / "test_jobs_refund_card.py")

    source = (temp_app.path / "jobs.py").read_text()
    assert source.startswith(
        '"""Jobs of the shop."""\n\nfrom django_jobs import job\nfrom datetime import datetime\n'
        "from django.utils import timezone\nimport logging\n\n\n@job\n"
    )
    assert source.count("import logging") == 1
    assert source.count("from django.utils import timezone") == 1
    assert source.count("from django_jobs import job") == 1
    assert 'def restock(sku):\n    return sku\n\n\n@job(queue="default")' in source

    module = temp_app.import_("jobs")
    assert module.restock.perform("x") == "x"
    assert module.charge_card.payload is not None  # requested_at: datetime is typed
    names = {n for n in registry.all_jobs() if n.startswith(temp_app.name)}
    assert names == {f"{temp_app.name}.jobs.{f}" for f in ("restock", "charge_card", "refund_card")}
    assert registry.get(f"{temp_app.name}.jobs.refund_card").queue == "slow"
    run_tests(temp_app.import_("test_jobs_charge_card"))


def test_imports_go_after_a_docstring_in_a_module_without_imports(temp_app):
    (temp_app.path / "jobs.py").write_text('"""Nothing here yet."""\n\nLIMIT = 3\n')
    temp_app.new("Tidy")
    source = (temp_app.path / "jobs.py").read_text()
    assert source.startswith(
        '"""Nothing here yet."""\n\nfrom datetime import datetime\nfrom django.utils import '
        "timezone\nimport logging\nfrom django_jobs import job\n\nLIMIT = 3\n"
    )
    assert temp_app.import_("jobs").tidy.perform(7, timezone.now()) is None


@pytest.mark.parametrize(
    "args, message",
    [
        (("Restock",), "already defines restock"),
        (("LIMIT",), "already defines limit"),
        (("send-email",), "'send-email' is not a valid Python name"),
        (("2Fast",), "is not a valid Python name"),
        (("Class",), "'class' is a Python keyword"),
        (("Notify", "--queue", "emails"), "Queue 'emails' is not in settings.JOBS['QUEUES']"),
    ],
)
def test_refusals_write_nothing(temp_app, args, message):
    (temp_app.path / "jobs.py").write_text(
        "from django_jobs import job\n\nlimit = 3\n\n\n@job\ndef restock(sku):\n    pass\n"
    )
    before = temp_app.files()
    with pytest.raises(CommandError, match=re.escape(message)):
        temp_app.new(*args)
    assert temp_app.files() == before


def test_refuses_an_existing_test_file_or_a_module_that_does_not_parse(temp_app):
    (temp_app.path / "test_jobs_ping.py").write_text("")
    with pytest.raises(CommandError, match="test_jobs_ping.py already exists"):
        temp_app.new("Ping")
    assert not (temp_app.path / "jobs.py").exists()
    (temp_app.path / "jobs.py").write_text("def broken(:\n")
    before = temp_app.files()
    with pytest.raises(CommandError, match="jobs.py does not parse"):
        temp_app.new("Pong")
    assert temp_app.files() == before


def test_refuses_an_unknown_app_label(temp_app):
    with pytest.raises(CommandError, match="No installed app has the label 'testap'. Did you mean"):
        call_command("jobs", "new", "testap", "Ping")


def test_a_category_action_name_with_a_queue(temp_app):
    written = temp_app.new("billing:send-invoice", "--queue", "email")
    source = Path(written[0]).read_text()
    assert '@job(name="billing:send-invoice", queue="email")' in source
    assert "def send_invoice(object_id: int, requested_at: datetime) -> None:" in source
    assert written[1] == str(temp_app.path / "test_jobs_send_invoice.py")
    module = temp_app.import_("jobs")
    definition = registry.get("billing:send-invoice")
    assert definition is module.send_invoice and definition.queue == "email"
    run_tests(temp_app.import_("test_jobs_send_invoice"))


def test_alone_the_category_names_the_app(temp_app):
    out = io.StringIO()
    call_command("jobs", "new", f"{temp_app.name}:welcome", "--queue", "email", stdout=out)
    source = (temp_app.path / "jobs.py").read_text()
    assert f'@job(name="{temp_app.name}:welcome", queue="email")' in source
    module = temp_app.import_("jobs")
    assert registry.get(f"{temp_app.name}:welcome") is module.welcome
    run_tests(temp_app.import_("test_jobs_welcome"))


def test_without_pydantic_the_generated_job_is_plain(temp_app, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydantic", None)
    temp_app.new("emails:welcome")
    source = (temp_app.path / "jobs.py").read_text()
    assert '@job(name="emails:welcome", queue="default")\ndef welcome(object_id: int) -> None:' in (
        source
    )
    assert "datetime" not in source and "timezone" not in source
    run_tests(temp_app.import_("test_jobs_welcome"))


@pytest.mark.parametrize(
    "args, message",
    [
        (("nowhere:welcome",), "no installed app has the label 'nowhere'"),
        (("Welcome",), "name the app: jobs new APP Welcome"),
        (("django.tasks:welcome",), "starts with 'django.tasks:', which django_jobs reserves"),
        (("queue:email",), "starts with 'queue:', which django_jobs reserves"),
        (("emails:",), "has an empty part"),
    ],
)
def test_category_action_refusals_write_nothing(temp_app, args, message):
    before = temp_app.files()
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("jobs", "new", *args)
    assert temp_app.files() == before


def test_an_already_registered_stable_name_is_refused(temp_app):
    from django_jobs import job

    @job(name="emails:welcome")
    def welcome():
        pass

    with pytest.raises(CommandError, match="a job named 'emails:welcome' is already registered"):
        temp_app.new("emails:welcome")

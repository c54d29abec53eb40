"""Entry point of worker subprocesses in tests: the test handlers plus `manage.py runjobworker`."""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    if "TEST_CPU_COUNT" in os.environ:  # a machine of that size, so defaults derived from it are known
        os.cpu_count = lambda: int(os.environ["TEST_CPU_COUNT"])
    if "TEST_SPANS_FILE" in os.environ:  # the tracing tests read this worker's spans from that file
        from tests.support.spans import export_to_file

        export_to_file(os.environ["TEST_SPANS_FILE"])
    import django

    django.setup()
    from django.core.management import call_command

    import tests.support.handlers  # noqa: F401  (registers the test handlers)

    call_command("runjobworker", *sys.argv[1:])

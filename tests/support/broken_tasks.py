"""A tasks module that fails to import: a job naming something in it must fail with that reason."""

raise RuntimeError("this module fails to import")

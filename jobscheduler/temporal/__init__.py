"""The Temporal backend's engine side: the generic job workflow, its activities and the worker.

`inputs` is the only module the workflow code imports from here (it runs outside the SDK's sandbox); it holds
no Django code, so workflow code stays deterministic. `activities` and `worker` run in the worker process and
use Django.
"""

"""The Temporal backend's engine side: the generic job workflow, its activities and the worker.

`inputs` is the only module the workflow sandbox imports from here; it holds no Django code, so workflow code
stays deterministic. `activities` and `worker` run in the worker process and use Django.
"""

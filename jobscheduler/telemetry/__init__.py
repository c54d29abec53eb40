"""What the workers report about themselves: Prometheus instruments (`metrics`) and OpenTelemetry spans
(`tracing`). Both are optional: without prometheus-client or an OpenTelemetry SDK every call is a no-op.
Backends call in here; nothing here imports a backend."""

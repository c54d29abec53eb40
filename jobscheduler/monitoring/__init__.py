"""What an operator's monitoring reads: the health report and probe, and the Prometheus gauges derived from the
database. Beside the dashboard: it reads the models and asks the runners, and nothing below imports it."""

"""The station throughput benchmark, run by bench/station_throughput.py (see bench/README.md).

config: where the run lives and its environment; images: the posted PNGs; world: the
database, model, line and stations; probes: in-process timings of the web side, the task
body and Celery; ceiling: the model alone; processes: gunicorn and the Celery worker as
subprocesses; cpu: CPU accounting and other load; load: the station threads; end_to_end:
the full API path; report: the printed figures.
"""

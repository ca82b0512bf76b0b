"""The periodic jobs, one list for both ways Loupe runs them: Celery beat in production
(`celery -A loupe beat`, scheduled in loupe.celery) and a thread of the embedded process
(loupe.startup.run_periodic_jobs_in_background), so neither needs a cron entry."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PeriodicJob:
    every_s: float
    task: object  # a Celery task; the embedded thread runs it in-process
    queue: str | None = None  # None: the default queue (inference)


def periodic_jobs() -> list[PeriodicJob]:
    # imported here: loupe.celery reads this list when the app is finalized, after Django
    from datasets import limits
    from datasets import tasks as dataset_tasks
    from inspection import tasks as inspection_tasks
    from labeling import tasks as labeling_tasks
    from ml import tasks as ml_tasks
    from monitoring import tasks as monitoring_tasks

    return [
        # items a dead process left unrouted get their fail-safe within a minute or so
        PeriodicJob(60.0, inspection_tasks.route_overdue_task),
        # final review decisions become labels (labeling.review_labels): it reads every line's
        # decisions and writes up to 500 labels, so on the datasets queue
        PeriodicJob(60.0, labeling_tasks.label_final_decisions_task, limits.datasets_queue()),
        # the labeling queue: flagged items (escapes, disagreements, box-less labels) every
        # minute, active learning's picks every 15; the queries over a line's history and the
        # scoring run on the datasets queue, never where stations wait
        PeriodicJob(60.0, labeling_tasks.sync_queue_sources_task, limits.datasets_queue()),
        PeriodicJob(900.0, labeling_tasks.refresh_labeling_queues_task, limits.datasets_queue()),
        PeriodicJob(600.0, dataset_tasks.clean_up_orphans_task, limits.datasets_queue()),
        PeriodicJob(3600.0, dataset_tasks.remove_expired_exports_task, limits.datasets_queue()),
        # cheap (a folder listing), so on the default queue: a training worker may be busy
        PeriodicJob(600.0, ml_tasks.clean_up_runs_task),
        # the monitoring page's buckets: the last minutes recomputed from the inspection tables,
        # on the datasets queue, never where stations wait
        PeriodicJob(60.0, monitoring_tasks.aggregate_monitoring_task, limits.datasets_queue()),
        # data drift: each station's window against its model's reference once 50 new items
        # came (monitoring.drift); a model's first reference takes seconds, so not inference
        PeriodicJob(120.0, monitoring_tasks.check_drift_task, limits.datasets_queue()),
        # alerts: each line's rules against its figures (monitoring.alerts), and webhook
        # deliveries due for a retry; on the datasets queue, never where stations wait
        PeriodicJob(60.0, monitoring_tasks.evaluate_alerts_task, limits.datasets_queue()),
        PeriodicJob(60.0, monitoring_tasks.send_due_webhooks_task, limits.datasets_queue()),
        # a challenger worse than the active model rolled back, a ready one stepped (rollout_gate)
        PeriodicJob(60.0, monitoring_tasks.check_rollouts_task, limits.datasets_queue()),
    ]

from django.urls import path

from ml import views

app_name = "ml"
urlpatterns = [
    path("", views.registry_page, name="registry"),
    path("<int:pk>/", views.version_page, name="version"),
    path("<int:pk>/promote/", views.promote, name="promote"),
    path("<int:pk>/discard/", views.discard, name="discard"),
    path("lines/<int:line_pk>/runs/", views.start_run, name="start-run"),
    path("lines/<int:line_pk>/rollback/", views.rollback, name="rollback"),
    path("lines/<int:line_pk>/policy/", views.set_retraining_policy, name="retraining_policy"),
    path("runs/<int:pk>/", views.run_page, name="run"),
    path("runs/<int:pk>/status.json", views.run_status_json, name="run-status"),
    path("runs/<int:pk>/retry/", views.retry_run, name="retry-run"),
    path(
        "queue-measurements/<int:pk>/",
        views.queue_measurement_page,
        name="queue-measurement",
    ),
]

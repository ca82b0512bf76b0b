from django.urls import path

from labeling import queue_views, views

app_name = "labeling"
urlpatterns = [
    path("inspections/<int:pk>/label/", views.label_page, name="label"),
    path("inspections/<int:pk>/annotations/", views.annotations, name="annotations"),
    path("inspections/<int:pk>/history/", views.history_page, name="history"),
    path("data/", views.data_page, name="data"),
    # the labeling queue; an entry is named by its inspection (one open entry per item)
    path("labeling/", queue_views.queue_page, name="queue"),
    path("labeling/claim", queue_views.claim, name="queue-claim"),
    path("inspections/<int:pk>/queue/keep", queue_views.keep, name="queue-keep"),
    path("inspections/<int:pk>/queue/release", queue_views.release, name="queue-release"),
    path("inspections/<int:pk>/queue/skip", queue_views.skip, name="queue-skip"),
    path("lines/<int:pk>/labeling/refresh/", queue_views.refresh, name="queue-refresh"),
]

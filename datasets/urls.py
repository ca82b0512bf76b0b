from django.urls import path

from datasets import batch_views, views

app_name = "datasets"
urlpatterns = [
    path("", views.version_list, name="list"),
    path("freeze/", views.freeze, name="freeze"),
    path("<int:pk>/", views.version_detail, name="detail"),
    path("<int:pk>/manifest.csv", views.manifest, name="manifest"),
    path("<int:pk>/exports/", views.start_export, name="export"),
    path("exports/<int:pk>/", views.export_status, name="export-status"),
    path("exports/<int:pk>/download/", views.export_download, name="export-download"),
    path("import/", views.import_page, name="import"),
    path("imports/<int:pk>/", views.import_detail, name="import-detail"),
    path("imports/<int:pk>/status/", views.import_status, name="import-status"),
    path("batches/", batch_views.batch_list, name="batches"),
    path("batches/<int:pk>/", batch_views.batch_detail, name="batch-detail"),
    path("batches/<int:pk>/status/", batch_views.batch_status, name="batch-status"),
    path("batches/<int:pk>/results.csv", batch_views.batch_csv, name="batch-csv"),
    path("batches/<int:pk>/results.json", batch_views.batch_json, name="batch-json"),
    path("batches/<int:pk>/labeling/", batch_views.send_to_labeling, name="batch-labeling"),
]

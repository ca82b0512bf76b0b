from django.urls import path

from datasets import views

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
]

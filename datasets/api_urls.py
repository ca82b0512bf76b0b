from django.urls import path

from datasets import api

app_name = "datasets-api"
urlpatterns = [
    path("", api.as_view(api.VersionListView), name="versions"),
    path("<int:pk>/", api.as_view(api.VersionDetailView), name="version"),
    path("<int:pk>/manifest.csv", api.as_view(api.ManifestView), name="manifest"),
    path("<int:pk>/exports/", api.as_view(api.VersionExportsView), name="version-exports"),
    path("exports/<int:pk>/", api.as_view(api.ExportDetailView), name="export"),
    path("exports/<int:pk>/download/", api.as_view(api.ExportDownloadView), name="export-download"),
    path("imports/", api.as_view(api.ImportListView), name="imports"),
    path("imports/<int:pk>/", api.as_view(api.ImportDetailView), name="import"),
]

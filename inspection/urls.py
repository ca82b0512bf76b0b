from django.urls import path

from inspection import console_views, views

app_name = "inspection"
urlpatterns = [
    # supervisor console
    path("lines/", console_views.lines_page, name="lines"),
    path("lines/<int:pk>/", console_views.line_page, name="line"),
    path("lines/<int:pk>/change/", console_views.change_line, name="line-change"),
    path("lines/<int:pk>/rules/", console_views.change_evidence_rules, name="line-rules"),
    path("lines/<int:pk>/escapes/", console_views.report_escape, name="line-escape"),
    # any inspection
    path("inspections/<int:pk>/", views.inspection_detail, name="detail"),
    path("inspections/<int:pk>/image", views.inspection_image, name="image"),
    path("inspections/<int:pk>/thumb", views.inspection_thumb, name="thumb"),
]

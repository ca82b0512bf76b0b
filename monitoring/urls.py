from django.urls import path

from monitoring import alert_views, rollout_views, views

app_name = "monitoring"
urlpatterns = [
    path("lines/<int:pk>/monitoring/", views.line_monitoring, name="line"),
    path("alerts/", alert_views.alerts_page, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", alert_views.acknowledge, name="alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", alert_views.resolve, name="alert-resolve"),
    path("lines/<int:pk>/alerts/", alert_views.line_alert_rules, name="line-alerts"),
    path("lines/<int:pk>/alerts/rules/", alert_views.change_rules, name="line-alert-rules"),
    path("lines/<int:pk>/alerts/mutes/", alert_views.change_mutes, name="line-alert-mutes"),
    path("lines/<int:pk>/alerts/reset/", alert_views.reset_references, name="line-alert-reset"),
    path("lines/<int:pk>/rollout/", rollout_views.line_rollout, name="line-rollout"),
    path("lines/<int:pk>/rollout/act/", rollout_views.act_on_rollout, name="line-rollout-act"),
    path(
        "lines/<int:pk>/alerts/settings/", alert_views.change_settings, name="line-alert-settings"
    ),
]

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo scenarios, apart from the domain: they drive the apps as users would."""

    name = "demo"
    verbose_name = "Demo scenarios"

from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "ml"
    verbose_name = "Models"

    def ready(self):
        from ml import receivers

        receivers.connect()

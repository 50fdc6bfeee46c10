from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Fleet campaigns: one PNM test over a footprint of modems, capped per CMTS."""

    name = "campaigns"

    def ready(self) -> None:
        from campaigns import services
        from captures.signals import operation_finished

        operation_finished.connect(services.operation_finished, dispatch_uid="campaign-items")

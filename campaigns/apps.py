from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Fleet campaigns: one PNM test over a footprint of modems, capped per CMTS."""

    name = "campaigns"

    def ready(self) -> None:
        from campaigns import services
        from captures.signals import operations_finished

        operations_finished.connect(services.operations_finished, dispatch_uid="campaign-items")

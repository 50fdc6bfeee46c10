from rest_framework.routers import SimpleRouter

from campaigns.api.views import CampaignViewSet

router = SimpleRouter()
router.register("", CampaignViewSet, basename="campaign")

urlpatterns = router.urls

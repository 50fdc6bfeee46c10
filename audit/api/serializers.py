from rest_framework import serializers

from audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor_id",
            "actor",
            "token_name",
            "action",
            "method",
            "path",
            "object_type",
            "object_id",
            "object_repr",
            "address",
            "status_code",
            "outcome",
            "detail",
        ]
        read_only_fields = fields

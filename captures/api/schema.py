"""Schema of ``modem`` in an operation start: a registered modem's id, or an inline spec
(a component of its own, so the reference resolves)."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension


class ModemFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "captures.api.serializers.ModemField"

    def map_serializer_field(self, auto_schema, direction):
        from captures.api.serializers import ModemSpecSerializer

        spec = auto_schema.resolve_serializer(ModemSpecSerializer, direction)
        return {
            "oneOf": [
                {"type": "integer", "description": "id of a registered cable modem"},
                spec.ref,
            ]
        }

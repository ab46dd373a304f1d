from rest_framework import serializers

from pipelines.models import Pipeline, PipelineVersion, Template


class PipelineSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    version = serializers.IntegerField(read_only=True, help_text="Number of the latest saved version.")
    parameters = serializers.JSONField(read_only=True, help_text="Edit through the graph document.")

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "owner", "version", "parameters", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class PipelineVersionSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PipelineVersion
        fields = ["number", "message", "author", "created_at"]


class PipelineVersionDetailSerializer(PipelineVersionSerializer):
    document = serializers.JSONField(read_only=True)

    class Meta(PipelineVersionSerializer.Meta):
        fields = [*PipelineVersionSerializer.Meta.fields, "document"]


class SaveResultSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    document = serializers.JSONField()


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField())


class TemplateSerializer(serializers.ModelSerializer):
    # Built-in templates have no owner, and only they have a slug.
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    slug = serializers.CharField(read_only=True, help_text='Set on built-in templates only ("" otherwise).')
    built_in = serializers.BooleanField(read_only=True)

    class Meta:
        model = Template
        fields = ["id", "name", "slug", "description", "owner", "built_in", "document", "created_at"]
        read_only_fields = fields


class TemplateCreateSerializer(serializers.Serializer):
    pipeline = serializers.IntegerField(help_text="Id of a pipeline you can see.")
    version = serializers.IntegerField(required=False, min_value=1, help_text="Default: the latest version.")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class InstantiateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, help_text="Default: the template's name.")


class NodeTypeSerializer(serializers.Serializer):
    key = serializers.CharField()
    category = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    config_schema = serializers.JSONField()
    expression_fields = serializers.ListField(child=serializers.CharField())
    needs_input = serializers.BooleanField()
    is_container = serializers.BooleanField()
    accepts_input = serializers.BooleanField(help_text="Whether an edge may end at a node of this type.")
    handles = serializers.ListField(
        child=serializers.CharField(), help_text="Source handles with the default config (see handles/)."
    )
    default_config = serializers.JSONField()


class NodeTypeAndConfigSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="A node-type key.")
    config = serializers.DictField(required=False, default=dict)


class NodeConfigsSerializer(serializers.Serializer):
    nodes = NodeTypeAndConfigSerializer(many=True, help_text="Nodes by type and config, as in the document.")


class NodeHandlesSerializer(serializers.Serializer):
    handles = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()), help_text="Per node, in the order asked."
    )

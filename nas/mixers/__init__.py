"""Token mixers as declarations: one :class:`MixerSpec` per mixer, one registry, plugins.

Declare a mixer once and every part of nas uses it::

    from nas.mixers import MixerField, MixerSpec, register_mixer

    register_mixer(MixerSpec(name="gfnet", letter="G", module=GlobalFilter,
                             fields=(MixerField("filter_size", "int", 7, low=1),)))

See docs/plugins.md. This package imports no torch.
"""
from nas.mixers.spec import BlockShape, MixerEstimate, MixerField, MixerSpec  # noqa: I001
from nas.mixers.registry import (
    MIXER_REGISTRY,
    attention_mixers,
    declare_mixer,
    letter_of,
    mixer_letters,
    mixer_names,
    mixer_spec,
    mixer_specs,
    mixers_with_field,
    register_mixer,
    stage_field,
    stage_field_names,
    unregister_mixer,
)
from nas.mixers import builtin  # noqa: F401  (registers the built-ins)
from nas.mixers.builtin import BUILTIN_MIXERS, DEFAULT_TRANSFORMER_MIXER, shifted_channels
from nas.mixers.plugins import (
    ENTRY_POINT_GROUP,
    PluginError,
    load_entry_points,
    load_plugins,
    parse_plugin_list,
    plugin_modules,
    plugin_paths,
    plugin_versions,
)

__all__ = [
    "BUILTIN_MIXERS",
    "DEFAULT_TRANSFORMER_MIXER",
    "ENTRY_POINT_GROUP",
    "MIXER_REGISTRY",
    "BlockShape",
    "MixerEstimate",
    "MixerField",
    "MixerSpec",
    "PluginError",
    "attention_mixers",
    "declare_mixer",
    "letter_of",
    "load_entry_points",
    "load_plugins",
    "mixer_letters",
    "mixer_names",
    "mixer_spec",
    "mixer_specs",
    "mixers_with_field",
    "parse_plugin_list",
    "plugin_modules",
    "plugin_paths",
    "plugin_versions",
    "register_mixer",
    "shifted_channels",
    "stage_field",
    "stage_field_names",
    "unregister_mixer",
]

"""Genomes: typed, frozen descriptions of vision networks, their parsing, presets and files."""
from nas.genome.io import genome_to_yaml, load_genome, load_yaml, read_document, save_genome
from nas.genome.parse import parse_genome
from nas.genome.presets import PRESETS, Preset
from nas.genome.schema import Genome, Stage

__all__ = [
    "PRESETS",
    "Genome",
    "Preset",
    "Stage",
    "genome_to_yaml",
    "load_yaml",
    "load_genome",
    "parse_genome",
    "read_document",
    "save_genome",
]

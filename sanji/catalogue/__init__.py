"""The county's matter catalogue (事项目录) as files: load, check and ship it.

The catalogue itself — its structs, checks, signed envelope and the village
agent's pre-check — lives in ``protocol.catalogue``, which every node shares.
This package reads the files a county keeps (TOML, JSON, XLSX) and ships an
illustrative catalogue whose day counts are invented, because the seed
documents name the matters but give no numbers.
"""

from protocol.catalogue import Catalogue, CatalogueError, Material, Matter
from sanji.catalogue.loader import (
    catalogue_from_mapping,
    default_catalogue,
    default_catalogue_path,
    load_catalogue,
    load_json,
    load_toml,
    load_xlsx,
)

__all__ = [
    "Catalogue",
    "CatalogueError",
    "Material",
    "Matter",
    "catalogue_from_mapping",
    "default_catalogue",
    "default_catalogue_path",
    "load_catalogue",
    "load_json",
    "load_toml",
    "load_xlsx",
]

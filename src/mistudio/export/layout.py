"""Every path inside an export archive, named once (POSIX paths relative to the archive root)."""

from __future__ import annotations

METADATA = "metadata.json"
README = "README.md"
SHA256SUMS = "SHA256SUMS"
FEATURES_DIR = "features"
EXPLANATIONS = "explanations/explanations.json"
NEURONPEDIA_DIR = "neuronpedia"
SKIPPED_INDEXES = f"{NEURONPEDIA_DIR}/skipped_indexes.json"
SAELENS_DIR = "saelens"
SAELENS_PRETRAINED = f"{SAELENS_DIR}/pretrained_saes.yaml"
# the batched row folders of Neuronpedia's bulk-import layout, and its one-row metadata files
BULK_ROW_KINDS = ("features", "activations", "explanations", "explanation_scores")
# Neuronpedia's config rows (explanation/score types and models), upserted by its importer before the rows;
# the folder mirrors `s3://neuronpedia-datasets/v1/config/` beside `v1/{model_id}/{source_id}/`
NP_CONFIG_DIR = f"{NEURONPEDIA_DIR}/exports/config"
BULK_RELEASE, BULK_MODEL, BULK_SOURCESET, BULK_SOURCE = "release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl"
BULK_METADATA_FILES = (BULK_RELEASE, BULK_MODEL, BULK_SOURCESET, BULK_SOURCE)


def feature_suffix(gzipped: bool) -> str:
    """The file suffix of a feature document: `.json.gz` or `.json`."""
    return ".json.gz" if gzipped else ".json"


def feature_member(index: int, gzipped: bool) -> str:
    """`features/{index}.json[.gz]`."""
    return f"{FEATURES_DIR}/{index}{feature_suffix(gzipped)}"


def feature_index_of(name: str) -> int | None:
    """The feature index of a `features/{index}.json[.gz]` member, or None for any other path."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != FEATURES_DIR:
        return None
    stem = parts[1].split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def saedashboard_batch(k: int | str) -> str:
    """`neuronpedia/batch-{k}.json`: SAEDashboard's `neuronpedia-runner` batch file `k` (a string such as
    `"{n}"` gives the pattern, for documentation)."""
    return f"{NEURONPEDIA_DIR}/batch-{k}.json"


def np_bulk_folder(model_id: str, source_id: str) -> str:
    """`neuronpedia/exports/{model_id}/{source_id}`: the folder of Neuronpedia's bulk-import layout."""
    return f"{NEURONPEDIA_DIR}/exports/{model_id}/{source_id}"


def bulk_batch_file(k: int) -> str:
    """`batch-{k}.jsonl.gz`: file `k` inside one of the bulk-import row folders (`BULK_ROW_KINDS`)."""
    return f"batch-{k}.jsonl.gz"


def member_kind(name: str) -> str | None:
    """What a member holds, for the checks that read it: `metadata`, `feature`, `batch` (SAEDashboard), one of
    `BULK_ROW_KINDS` (bulk-import rows), or None for members that are not checked one by one."""
    parts = name.split("/")
    if name == METADATA:
        return "metadata"
    if parts[0] == FEATURES_DIR and len(parts) == 2:
        return "feature"
    if parts[0] == NEURONPEDIA_DIR and len(parts) == 2 and parts[1].startswith("batch-"):
        return "batch"
    if (parts[0] == NEURONPEDIA_DIR and len(parts) >= 3 and parts[-2] in BULK_ROW_KINDS
            and parts[-1].endswith(".jsonl.gz")):
        return parts[-2]
    return None

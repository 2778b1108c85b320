"""Errors that reach the user as one clear line, never as a library traceback."""


class MuppetError(Exception):
    """Base class: the message is written for the person running the pipeline."""


class ConfigError(MuppetError):
    """pipelines.yaml (or a catalog file) is invalid.

    Args:
        problems: one line per offending field, each starting with the field's YAML path.
        source: the file the problems were found in.
    """

    def __init__(self, problems: list[str], source: str = "pipelines.yaml"):
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


class DataSourceError(MuppetError):
    """A dataset could be found neither in the mirror nor on the hub."""


class BackboneError(MuppetError):
    """A backbone could not be resolved or loaded."""


class SelectionError(MuppetError):
    """A fine-tune would select (a learning rate, an early-stopping point) on too few examples."""


class DivergedError(MuppetError):
    """Training produced a loss that is not a finite number: nothing it trained can be scored."""


class OverBudgetError(MuppetError):
    """A run's plan exceeds the GPU-hours the run was allowed (``max_gpu_hours``): it stops before any work."""


class StoreError(MuppetError):
    """The artifact store refused access, could not be reached, or a write failed after its retries."""


class CorruptArtifactError(MuppetError):
    """A stored artifact's files do not match its manifest: a file is missing or its sha256 differs.

    Args:
        uri: where the artifact lives.
        file: the offending file, relative to the artifact.
        problem: what is wrong with it.
    """

    def __init__(self, uri: str, file: str, problem: str):
        self.uri, self.file, self.problem = uri, file, problem
        super().__init__(f"artifact {uri} is corrupt: {file} {problem}")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type when the message is empty), shortened."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


HUB_REASONS = {
    "GatedRepoError": "gated or private (401): accept its terms on the hub and log in (HF_TOKEN)",
    "RevisionNotFoundError": "no such revision (404)",
    "EntryNotFoundError": "a file it names is missing (404)",
    "RepositoryNotFoundError": "no such repository, or a private one (404)",
}
"""Why the Hugging Face hub refused, by the class (or a base class) of ``huggingface_hub``'s error."""


def hub_failure(exc: BaseException) -> str:
    """One line on why a hub call failed: the meaning of a refusal ``huggingface_hub`` classifies
    (``HUB_REASONS``), then its own first line."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    reason = next((HUB_REASONS[n] for n in names if n in HUB_REASONS), None)
    detail = first_line(exc).rstrip(".")  # the callers' sentences go on after it
    return f"{reason}; {detail}" if reason else detail

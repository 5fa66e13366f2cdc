"""The base model every config section derives from: unknown keys are rejected."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys fail at load time, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)
